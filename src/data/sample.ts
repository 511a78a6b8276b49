/**
 * A bounded sample of a corpus for tokenizer training, drawn across the whole stream: each
 * (deduplicated) document is cut into segments of about 16K characters (where the cut changes
 * no pre-tokenizer chunk, cut.ts), each segment gets a seeded random key, and the segments with
 * the smallest keys that fit in `maxChars` are kept (a bottom-k reservoir: every segment has the
 * same chance, wherever it is in the stream, and at most `maxChars` are held). The sample is
 * returned in stream order. A corpus that fits whole is returned whole, so a tokenizer trained on
 * it is the one trained on all the text.
 */
import { createHash } from "node:crypto";
import { PieceCutter } from "./cut.js";
import { DigestSet } from "./hashset.js";
import type { ReadOptions } from "./read.js";
import { itemDocs, listSource } from "./stream.js";
import { newReport, FileReadError } from "./read.js";

interface Segment {
  key: number;
  seq: number;
  text: string;
  doc: number;
}

export interface SampleOptions {
  maxChars: number;
  segmentChars?: number;
  seed?: number;
  read?: ReadOptions;
  /** Called with the characters read so far. */
  onProgress?: (chars: number) => void;
}

export interface Sample {
  texts: string[];
  /** Characters kept, and in the (deduplicated) corpus. */
  chars: number;
  totalChars: number;
  documents: number;
  /** Files skipped because they could not be read (as corpus preparation skips them). */
  unreadable: { path: string; reason: string }[];
}

/** mulberry32: a small seeded generator of keys in [0, 1). */
function keys(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A max-heap of segments by key. */
class Reservoir {
  readonly items: Segment[] = [];
  chars = 0;
  push(s: Segment): void {
    const a = this.items;
    let i = a.push(s) - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p].key >= s.key) break;
      a[i] = a[p];
      i = p;
    }
    a[i] = s;
    this.chars += s.text.length;
  }
  pop(): Segment {
    const a = this.items, top = a[0], last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      for (;;) {
        let c = 2 * i + 1;
        if (c >= a.length) break;
        if (c + 1 < a.length && a[c + 1].key > a[c].key) c++;
        if (a[c].key <= last.key) break;
        a[i] = a[c];
        i = c;
      }
      a[i] = last;
    }
    this.chars -= top.text.length;
    return top;
  }
  /** Drops the segments of one document (it turned out to be a duplicate). */
  remove(doc: number): void {
    const keep = this.items.filter((s) => s.doc !== doc);
    this.items.length = 0;
    this.chars = 0;
    for (const s of keep) this.push(s);
  }
}

export async function sampleSources(specs: string[], o: SampleOptions): Promise<Sample> {
  const segmentChars = o.segmentChars ?? 1 << 14;
  const next = keys(o.seed ?? 0x5eed);
  const reservoir = new Reservoir();
  const seen = new DigestSet();
  let threshold = Infinity;  // the smallest key evicted so far: later segments need a smaller one
  let seq = 0, doc = 0, totalChars = 0, readChars = 0;
  const unreadable: Sample["unreadable"] = [];
  const offer = (text: string): void => {
    if (text.length === 0) return;
    const key = next();
    seq++;
    if (key >= threshold) return;
    reservoir.push({ key, seq, text, doc });
    while (reservoir.chars > o.maxChars) threshold = Math.min(threshold, reservoir.pop().key);
  };
  for (const listing of specs.map(listSource)) {
    for (const item of listing.items) {
      const mark = seen.mark(), firstDoc = doc;
      try {
        for await (const d of itemDocs(item, newReport(), o.read)) {
          const hash = createHash("sha256");
          const cutter = new PieceCutter(segmentChars);
          let chars = 0;
          for await (const chunk of d.chunks) {
            hash.update(chunk);
            chars += chunk.length;
            readChars += chunk.length;
            for (const piece of cutter.push(chunk)) offer(piece);
            if (cutter.held > 4 * segmentChars) offer(cutter.end());  // a long run without whitespace
            o.onProgress?.(readChars);
          }
          offer(cutter.end());
          if (!seen.add(hash.digest())) reservoir.remove(doc);
          else totalChars += chars;
          doc++;
        }
      } catch (e) {
        if (!(e instanceof FileReadError)) throw e;
        seen.rollback(mark);
        for (let k = firstDoc; k < doc; k++) reservoir.remove(k);
        unreadable.push({ path: e.path, reason: e.reason });
      }
    }
  }
  const kept = [...reservoir.items].sort((a, b) => a.seq - b.seq);
  return { texts: kept.map((s) => s.text), chars: reservoir.chars, totalChars, documents: seen.size, unreadable };
}
