/**
 * The train/validation split of an in-memory corpus, by content hash: whole documents, or
 * (too few documents) paragraph blocks of them. Corpus preparation streams the same split
 * (pieces.ts, with cut.ts's BlockCutter for the blocks).
 */
import { createHash } from "node:crypto";
import type { Doc } from "./sources.js";

const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");

export const hashFraction = (text: string): number => parseInt(sha256(text).slice(0, 8), 16) / 2 ** 32;

/** How a corpus was split: whole documents, or (too few documents) paragraph blocks of them. */
export interface CorpusSplit {
  train: Doc[];
  val: Doc[];
  unit: "document" | "block";
  /** With unit "block": the block size aimed at, in characters. */
  blockChars?: number;
}

/**
 * Deterministic split by content hash: about `valFraction` of documents go to validation.
 * A corpus of too few documents for that (one long file, a handful of files: no document's
 * hash falls under `valFraction`, or every one does) is split by blocks instead: each document
 * is cut into runs of blank-line paragraphs of about `blockChars` characters, and the blocks
 * are assigned by their own hash the same way. Consecutive blocks on the same side are joined
 * again, so documents are cut only where a validation block was taken out.
 */
export function splitByHash(docs: Doc[], valFraction: number): CorpusSplit {
  const train: Doc[] = [], val: Doc[] = [];
  for (const d of docs) (hashFraction(d.id + "\0" + d.text) < valFraction ? val : train).push(d);
  if (val.length > 0 && train.length > 0) return { train, val, unit: "document" };
  return splitByBlocks(docs, valFraction);
}

/** Block size for a corpus of `totalChars`: about 200 blocks, between 256 characters and 64K. */
export function blockSizeFor(totalChars: number): number {
  return Math.max(256, Math.min(65536, Math.round(totalChars / 200)));
}

/**
 * Cuts text into blocks of at least `blockChars` characters ending at a paragraph break (a blank
 * line); where no paragraph break comes within 2 × blockChars, at a line break, else at that
 * length. The blocks concatenate back to the text.
 */
export function textBlocks(text: string, blockChars: number): string[] {
  const out: string[] = [];
  const paragraphEnd = /\n[ \t\r]*\n/g;
  let start = 0;
  while (start < text.length) {
    let end = text.length;
    if (text.length - start > blockChars) {
      paragraphEnd.lastIndex = start + blockChars;
      const m = paragraphEnd.exec(text);
      const limit = start + 2 * blockChars;
      if (m !== null && m.index < limit) end = m.index + m[0].length;
      else if (limit < text.length) {
        const nl = text.lastIndexOf("\n", limit);
        end = nl >= start + blockChars ? nl + 1 : limit;
        const c = text.charCodeAt(end - 1);
        if (c >= 0xd800 && c <= 0xdbff) end++;  // never between the halves of a surrogate pair
      }
    }
    out.push(text.slice(start, end));
    start = end;
  }
  return out;
}

/** The error for a corpus too small to hold out any validation text. */
export function tooLittleTextError(totalChars: number, documents: number): Error {
  return new Error(
    `split: ${totalChars.toLocaleString("en-US")} characters of text in ${documents} document(s) are too little to hold out a validation split; ` +
    `give more text with --data (a few hundred KB at least: a larger file, a folder of files, or a built-in source such as moby-dick)`,
  );
}

function splitByBlocks(docs: Doc[], valFraction: number): CorpusSplit {
  const totalChars = docs.reduce((s, d) => s + d.text.length, 0);
  const blockChars = blockSizeFor(totalChars);
  const blocks = docs.flatMap((d) => textBlocks(d.text, blockChars).map((text, i) => ({ doc: d, i, text, h: hashFraction(text) })));
  if (blocks.length < 2) throw tooLittleTextError(totalChars, docs.length);
  const inVal = blocks.map((b) => b.h < valFraction);
  const byHash = blocks.map((_, i) => i).sort((a, b) => blocks[a].h - blocks[b].h);
  if (!inVal.includes(true)) inVal[byHash[0]] = true;
  if (!inVal.includes(false)) inVal[byHash[byHash.length - 1]] = false;
  const train: Doc[] = [], val: Doc[] = [];
  let k = 0;
  while (k < blocks.length) {
    const { doc, i } = blocks[k];
    let text = "";
    let j = k;
    while (j < blocks.length && blocks[j].doc === doc && inVal[j] === inVal[k]) text += blocks[j++].text;
    (inVal[k] ? val : train).push({ id: `${doc.id}#blocks${i}-${blocks[j - 1].i}`, text });
    k = j;
  }
  return { train, val, unit: "block", blockChars };
}
