/**
 * Cutting a text stream as it arrives, with the same cuts as cutting the whole text:
 *
 *   PieceCutter   pieces of at least `target` characters, cut where byte-level BPE's
 *                 pre-tokenizer splits the same with or without the cut (tokenizer/bytelevel.ts
 *                 textBlocks: before a whitespace character followed by a non-whitespace one;
 *                 in text without such a place for twice the target, after punctuation
 *                 followed by a letter or digit).
 *                 Encoding the pieces one by one gives the ids of encoding the whole text, so a
 *                 document of any size is tokenized in bounded pieces, on any number of threads.
 *   BlockCutter   the validation split's paragraph blocks (sources.ts textBlocks), streamed.
 */

/** A whitespace character with a non-whitespace one after it (JavaScript's \s is bytelevel's isWhitespace). */
const SAFE_CUT = /\s(?=\S)/g;
/**
 * Text without whitespace for long stretches (minified JSON, base64) is cut after a punctuation
 * mark followed by a letter or digit: the pre-tokenizer's punctuation run ends there and a letter
 * or number run starts, with or without the cut. Not after an apostrophe, which may start a
 * contraction ('s, 't, ...) that takes the letters after it.
 */
const FALLBACK_CUT = /[^\s\p{L}\p{N}'](?=[\p{L}\p{N}])/gu;

export class PieceCutter {
  private buf = "";
  private searchFrom = 0;
  private fallbackFrom = 0;
  constructor(private readonly target: number) {
    if (!(target >= 1)) throw new RangeError(`PieceCutter: target ${target} must be >= 1`);
  }

  /** Characters held (waiting for a cut). */
  get held(): number {
    return this.buf.length;
  }

  /** Adds text; returns the pieces it completes (possibly none). */
  push(text: string): string[] {
    this.buf = this.buf.length === 0 ? text : this.buf + text;
    const out: string[] = [];
    while (this.buf.length > this.target) {
      SAFE_CUT.lastIndex = Math.max(this.target, this.searchFrom);
      const m = SAFE_CUT.exec(this.buf);
      let at = m === null ? -1 : m.index;
      if (m === null) {
        // No cut yet (a long run without whitespace): look again from here when more text comes.
        this.searchFrom = Math.max(this.target, this.buf.length - 1);
        // Past twice the target, a cut after punctuation will do.
        if (this.buf.length > 2 * this.target) {
          FALLBACK_CUT.lastIndex = Math.max(this.target, this.fallbackFrom);
          const f = FALLBACK_CUT.exec(this.buf);
          if (f !== null) at = f.index + f[0].length;  // after the mark (two code units for one outside the BMP)
          else this.fallbackFrom = Math.max(this.target, this.buf.length - 1);
        }
        if (at < 0) break;
      }
      out.push(this.buf.slice(0, at));
      this.buf = this.buf.slice(at);
      this.searchFrom = 0;
      this.fallbackFrom = 0;
    }
    return out;
  }

  /** The rest of the text (the last piece; "" when nothing is held). */
  end(): string {
    const rest = this.buf;
    this.buf = "";
    this.searchFrom = 0;
    this.fallbackFrom = 0;
    return rest;
  }
}

const PARAGRAPH_END = /\n[ \t\r]*\n/g;

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}

/**
 * sources.ts textBlocks(text, blockChars) over a stream: push the text in any chunks, then end();
 * the blocks are the same. A block is decided once the text reaches 2 × blockChars past its start
 * (or the stream ends), so at most about that much plus one chunk is held.
 */
export class BlockCutter {
  private buf = "";
  constructor(private readonly blockChars: number) {}

  get held(): number {
    return this.buf.length;
  }

  push(text: string): string[] {
    this.buf = this.buf.length === 0 ? text : this.buf + text;
    return this.cut(false);
  }

  end(): string[] {
    return this.cut(true);
  }

  private cut(final: boolean): string[] {
    const out: string[] = [];
    const bc = this.blockChars, limit = 2 * bc;
    for (;;) {
      const buf = this.buf, n = buf.length;
      if (n === 0) break;
      if (n <= bc) {
        if (!final) break;
        out.push(buf);
        this.buf = "";
        break;
      }
      PARAGRAPH_END.lastIndex = bc;
      const m = PARAGRAPH_END.exec(buf);
      let end: number;
      if (m !== null && m.index < limit) end = m.index + m[0].length;
      else {
        if (!final && (n <= limit || this.pendingParagraph(buf))) break;  // a paragraph break may still complete before the limit
        if (limit < n) {
          const nl = buf.lastIndexOf("\n", limit);
          end = nl >= bc ? nl + 1 : limit;
          if (isHighSurrogate(buf.charCodeAt(end - 1))) end++;
        } else end = n;
      }
      out.push(buf.slice(0, end));
      this.buf = buf.slice(end);
    }
    return out;
  }

  /** Whether the buffer ends in "\n" + spaces/tabs/CRs with that "\n" in [blockChars, 2 × blockChars): a match in progress. */
  private pendingParagraph(buf: string): boolean {
    let j = buf.length - 1;
    while (j >= 0) {
      const c = buf.charCodeAt(j);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0d) break;
      j--;
    }
    return j >= this.blockChars && j < 2 * this.blockChars && buf.charCodeAt(j) === 0x0a;
  }
}
