/**
 * Helpers the suite's loaders share: where an installed npm package lives, its files by
 * extension, text cut into sentence chunks or line windows, a split that keeps each group
 * (a file, a document, a thread) on one side, and an even cap per label.
 *
 *     const dir = packageDir("fastify");
 *     const files = filesUnder(dir, [".js"], ["test"]);
 *     const { train, test } = splitByGroup(examples, 0.2, 0);
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, sep } from "node:path";
import { type Example, TaskError, shuffled } from "./task.js";

const require = createRequire(import.meta.url);

/** The folder of an installed package (works for packages whose `exports` hide package.json). */
export function packageDir(name: string): string {
  try {
    return dirname(require.resolve(`${name}/package.json`));
  } catch {
    // exports without "./package.json": walk up from the entry point.
  }
  let entry: string;
  try {
    entry = require.resolve(name);
  } catch {
    const fromRoot = join(process.cwd(), "node_modules", name);
    if (existsSync(join(fromRoot, "package.json"))) return fromRoot;
    throw new TaskError(`the npm package ${name} is not installed (npm install brings it: it is a dependency of plinth)`);
  }
  let dir = dirname(entry);
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new TaskError(`the npm package ${name}: no package.json above ${entry}`);
    dir = up;
  }
  return dir;
}

/** Files under `dir` whose names end with one of `exts`, skipping folders named in `skip`; sorted, so loaders are deterministic. */
export function filesUnder(dir: string, exts: string[], skip: string[] = []): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) {
        if (!skip.includes(name) && name !== "node_modules") walk(p);
      } else if (exts.some((e) => name.endsWith(e))) {
        out.push(p);
      }
    }
  };
  walk(dir);
  return out;
}

/** A path relative to its package, with forward slashes (a stable group name). */
export const relName = (root: string, path: string): string => relative(root, path).split(sep).join("/");

/** Sentences joined into chunks of `min`..`max` characters (a longer sentence is cut at a word). */
export function sentenceChunks(text: string, min = 80, max = 300): string[] {
  const sentences = text.replace(/\s+/g, " ").trim().split(/(?<=[.!?])\s+(?=[A-Z"'(])/);
  const out: string[] = [];
  let cur = "";
  for (const s of sentences) {
    cur = cur === "" ? s : `${cur} ${s}`;
    if (cur.length >= min) {
      out.push(cur.length > max ? cur.slice(0, cur.lastIndexOf(" ", max) > min ? cur.lastIndexOf(" ", max) : max) : cur);
      cur = "";
    }
  }
  return out;
}

/**
 * Windows of `lines` consecutive lines of source text (at most `perFile` of them, spread evenly
 * over the file), each kept only when it holds at least `minChars` of non-blank text.
 */
export function lineWindows(text: string, { lines = 10, perFile = 12, minChars = 120, maxChars = 600 } = {}): string[] {
  const all = text.split(/\r?\n/);
  const starts: number[] = [];
  for (let s = 0; s + lines <= all.length || (s === 0 && all.length > 0); s += lines) starts.push(s);
  const stride = Math.max(1, starts.length / perFile);
  const out: string[] = [];
  for (let i = 0; i < starts.length && out.length < perFile; i += stride) {
    const w = all.slice(starts[Math.floor(i)], starts[Math.floor(i)] + lines).join("\n").trimEnd();
    if (w.replace(/\s/g, "").length >= minChars / 2 && w.trim().length >= minChars) out.push(w.length > maxChars ? w.slice(0, maxChars) : w);
  }
  return out;
}

/**
 * A fixed split that keeps every group on one side: per label, the label's groups (sorted, then
 * shuffled by `seed`) go to test until about `testFraction` of the label's examples are there.
 * An example without a group is a group of its own; a group never sits on both sides.
 */
export function splitByGroup(examples: Example[], testFraction: number, seed: number): { train: Example[]; test: Example[] } {
  if (!(testFraction > 0 && testFraction < 1)) throw new RangeError(`splitByGroup: testFraction ${testFraction} must be in (0, 1)`);
  const train: Example[] = [], test: Example[] = [];
  const labels = [...new Set(examples.map((e) => e.label))].sort();
  // A group that spans labels ("red" in "red apple" and "red heart") keeps the side it got first.
  const decided = new Map<string, boolean>();
  for (const label of labels) {
    const groups = new Map<string, Example[]>();
    examples.forEach((e, i) => {
      if (e.label !== label) return;
      const g = e.group ?? `#${i}`;
      groups.set(g, [...(groups.get(g) ?? []), e]);
    });
    const names = shuffled([...groups.keys()].sort(), seed);
    const total = [...groups.values()].reduce((s, l) => s + l.length, 0);
    let inTest = 0;
    names.forEach((g, i) => {
      // Keep at least one group for training, whatever the fraction.
      const toTest = decided.get(g) ?? (i < names.length - 1 && inTest < testFraction * total);
      decided.set(g, toTest);
      if (toTest) inTest += groups.get(g)!.length;
      (toTest ? test : train).push(...groups.get(g)!);
    });
  }
  return { train: shuffled(train, seed + 1), test: shuffled(test, seed + 2) };
}

/** At most `cap` examples per label, taken evenly through each label's list (so every group keeps a share). */
export function capPerLabel(examples: Example[], cap: number): Example[] {
  const out: Example[] = [];
  for (const label of [...new Set(examples.map((e) => e.label))]) {
    const mine = examples.filter((e) => e.label === label);
    const stride = Math.max(1, mine.length / cap);
    let taken = 0;
    for (let i = 0; i < mine.length && taken < cap; i += stride, taken++) out.push(mine[Math.floor(i)]);
  }
  return out;
}
