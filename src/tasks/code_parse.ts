/**
 * Whether generated code parses: TypeScript's own parser (the `typescript` package), syntax
 * only (no type checking), loaded on first use.
 *
 *     parsesAsTypeScript("export function f(x: number) { return x + 1; }");   // true
 *     parsesAsTypeScript("export function f(x: number { return");             // false
 */
import { createRequire } from "node:module";
import type * as TS from "typescript";

let ts: typeof TS | null = null;

/** The syntax errors TypeScript's parser finds in `text` (read as a .ts module). */
export function typescriptSyntaxErrors(text: string): string[] {
  ts ??= createRequire(import.meta.url)("typescript") as typeof TS;
  const out = ts.transpileModule(text, { fileName: "completion.ts", reportDiagnostics: true, compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext } });
  return (out.diagnostics ?? []).filter((d) => d.category === ts!.DiagnosticCategory.Error).map((d) => ts!.flattenDiagnosticMessageText(d.messageText, "\n"));
}

export function parsesAsTypeScript(text: string): boolean {
  return typescriptSyntaxErrors(text).length === 0;
}

export const PARSERS = ["typescript"] as const;
export type Parser = (typeof PARSERS)[number];
