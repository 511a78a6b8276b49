// Generative evaluation for code: the parse rate of greedy completions with TypeScript's own
// parser (the typescript package): the parser accepts and refuses what tsc does, and
// `plinth eval --perplexity pairs.jsonl --parse typescript` reports the share of replies that
// parse (a completion read after its prompt), which a model taught the completions raises.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GPT, gptConfig, saveGPT } from "../src/models/gpt/index.js";
import { parsesAsTypeScript, typescriptSyntaxErrors } from "../src/tasks/code_parse.js";
import { runGenerative } from "../src/adapt/generative.js";

const dir = mkdtempSync(join(tmpdir(), "plinth-gencode-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const baseDir = join(dir, "base"), pairs = join(dir, "pairs.jsonl");
const cli = (...args: string[]) => execFileSync(process.execPath, [join(import.meta.dirname, "..", "src", "cli", "main.js"), ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

before(() => {
  saveGPT(baseDir, new GPT(gptConfig({ vocab_size: 257, n_embd: 32, n_layer: 2, n_head: 2, n_positions: 48 }), { seed: 11 }));
  // "complete this declaration": the prompt opens a const declaration, the completion closes it.
  const names = ["a", "b", "c", "d", "e", "f", "g", "h"];
  const lines = names.flatMap((n) => names.map((m) => JSON.stringify({ prompt: `const ${n}${m} = `, completion: "1;" })));
  writeFileSync(pairs, lines.join("\n") + "\n");
});

test("TypeScript's parser: syntax errors, not type errors", () => {
  assert.equal(parsesAsTypeScript("export function f(x: number): number { return x + 1; }"), true);
  assert.equal(parsesAsTypeScript("const x: string = 3;"), true, "a type error still parses");
  assert.equal(parsesAsTypeScript("interface A { b: string }\ntype C = A[];"), true);
  assert.equal(parsesAsTypeScript("export function f(x: number { return"), false);
  assert.equal(parsesAsTypeScript("const = 1;"), false);
  assert.match(typescriptSyntaxErrors("let x = (1 + ;")[0], /expected/i);
});

test("plinth eval --parse typescript: the share of greedy completions that parse after their prompt, raised by fine-tuning on the completions", async () => {
  const base = JSON.parse(cli("eval", "--base", baseDir, "--perplexity", pairs, "--parse", "typescript", "--max-test", "16", "--json")) as { parseRate: number; exactMatch: number; examplesMatched: number };
  assert.equal(base.examplesMatched, 16);
  assert.ok(base.parseRate >= 0 && base.parseRate <= 0.25, `an untrained base's byte soup rarely closes a declaration: ${base.parseRate}`);
  const out = join(dir, "lora");
  const r = await runGenerative({ base: baseDir, method: "lora", data: pairs, out, steps: 80, batchSize: 8, lr: 1e-2, maxTest: 12, valFraction: 0.2, parse: "typescript", lora: { rank: 8 } });
  assert.ok(Number.isFinite(r.before.parseRate) && Number.isFinite(r.after.parseRate));
  assert.ok(r.after.parseRate >= r.before.parseRate + 0.5, `parse rate ${r.before.parseRate} -> ${r.after.parseRate}`);
  const tuned = JSON.parse(cli("eval", "--base", baseDir, "--adapter", out, "--perplexity", pairs, "--parse", "typescript", "--max-test", "16", "--json")) as { parseRate: number };
  assert.ok(tuned.parseRate >= 0.75, `after fine-tuning: ${tuned.parseRate}`);
  assert.match(cli("eval", "--base", baseDir, "--adapter", out, "--perplexity", pairs, "--parse", "typescript", "--max-test", "4"), /parses \d+\.\d%/);
  assert.throws(() => cli("eval", "--base", baseDir, "--parse", "typescript"), /--parse applies to --perplexity/);
  assert.throws(() => cli("eval", "--base", baseDir, "--perplexity", pairs, "--parse", "python"), /--parse/);
});
