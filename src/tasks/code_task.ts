/**
 * code-language: which language a snippet of source is in, from files that plinth's own npm
 * dependencies ship (no download): C (SQLite's amalgamation in better-sqlite3), C++ (the
 * native sources of better-sqlite3, sharp and node-addon-api), JavaScript (fastify), TypeScript
 * (type declarations and sources of fastify, sharp, better-sqlite3 and @huggingface/jinja) and
 * Markdown (fastify's guides). A snippet is a window of 10 lines; the split keeps each file on
 * one side (the 9 MB sqlite3.c counts as 40 regions, each its own group).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { capPerLabel, filesUnder, lineWindows, packageDir, relName, splitByGroup } from "./package_data.js";
import { type Example, type Task, makeTask } from "./task.js";
import type { SuiteLoadOptions } from "./text_tasks.js";

interface Source {
  pkg: string;
  under: string;
  exts: string[];
  skip?: string[];
}

const SOURCES: Record<string, Source[]> = {
  c: [{ pkg: "better-sqlite3", under: "deps/sqlite3", exts: [".c", ".h"] }],
  "c++": [
    { pkg: "better-sqlite3", under: "src", exts: [".cpp", ".hpp", ".lzz"] },
    { pkg: "sharp", under: "src", exts: [".cc", ".h"] },
    { pkg: "node-addon-api", under: ".", exts: [".h"] },
  ],
  javascript: [{ pkg: "fastify", under: ".", exts: [".js"], skip: ["docs", "types", "test"] }],
  typescript: [
    { pkg: "fastify", under: ".", exts: [".d.ts", ".ts"], skip: ["docs", "test"] },
    { pkg: "sharp", under: "lib", exts: [".d.ts"] },
    { pkg: "better-sqlite3", under: ".", exts: [".d.ts"], skip: ["deps", "src", "build"] },
    { pkg: "@huggingface/jinja", under: ".", exts: [".ts"] },
  ],
  markdown: [{ pkg: "fastify", under: "docs", exts: [".md"] }],
};

/** Pieces of a very large file, each a group of its own, so that one file can sit on both sides of the split without neighbouring lines doing so. */
const REGIONS = 40;

export function codeLanguageTask({ seed = 0 }: SuiteLoadOptions = {}): Task {
  const examples: Example[] = [];
  for (const [label, sources] of Object.entries(SOURCES)) {
    for (const { pkg, under, exts, skip = [] } of sources) {
      const root = packageDir(pkg);
      const dir = join(root, under);
      if (!existsSync(dir)) continue;
      for (const file of filesUnder(dir, exts, skip)) {
        if (label === "javascript" && file.endsWith(".d.ts")) continue;
        if (label === "typescript" && !file.endsWith(".ts")) continue;
        const text = readFileSync(file, "utf8");
        const name = `${pkg}/${relName(root, file)}`;
        if (text.length > 1_000_000) {
          const lines = text.split("\n");
          const per = Math.ceil(lines.length / REGIONS);
          for (let r = 0; r < REGIONS; r++) {
            for (const w of lineWindows(lines.slice(r * per, (r + 1) * per).join("\n"), { perFile: 10 })) examples.push({ text: w, label, group: `${name}#${r}` });
          }
        } else {
          for (const w of lineWindows(text, { perFile: 12 })) examples.push({ text: w, label, group: name });
        }
      }
    }
  }
  const { train, test } = splitByGroup(capPerLabel(examples, 500), 0.25, seed);
  return makeTask("code-language", train, test, Object.keys(SOURCES));
}
