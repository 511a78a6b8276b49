/**
 * Lossless bytes ↔ string, so arbitrary bytes (invalid UTF-8 included) can go through the
 * string-based pre-tokenizer and come back exactly.
 *
 * Well-formed UTF-8 decodes as usual. Every byte of an ill-formed sequence becomes a lone
 * low surrogate, U+DC00 + byte (U+DC80..U+DCFF; Python calls this "surrogateescape").
 * Lone surrogates never come out of well-formed UTF-8, and the tokenizer makes any text it
 * is given well-formed first, so inside a chunk a lone U+DC80..U+DCFF always means "this
 * raw byte" and `utf8Bytes` turns it back into that byte. The pre-tokenizer sees escaped
 * bytes as "other" characters, so they group with neighbouring punctuation and merges
 * apply to their bytes like to any others (a truncated character still merges).
 */

const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Bytes → string; invalid UTF-8 bytes become lone surrogates U+DC80..U+DCFF. */
export function decodeLossless(bytes: Uint8Array): string {
  try {
    return STRICT_UTF8.decode(bytes);
  } catch {
    return decodeEscaping(bytes);
  }
}

function continuation(bytes: Uint8Array, i: number): boolean {
  return i < bytes.length && (bytes[i] & 0xc0) === 0x80;
}

/** Length of the well-formed UTF-8 sequence starting at `i` (Unicode table 3-7), or 0. */
function sequenceLength(bytes: Uint8Array, i: number): number {
  const b = bytes[i];
  if (b < 0x80) return 1;
  if (b >= 0xc2 && b <= 0xdf) return continuation(bytes, i + 1) ? 2 : 0;
  if (b >= 0xe0 && b <= 0xef) {
    if (i + 1 >= bytes.length) return 0;
    const b1 = bytes[i + 1];
    const lo = b === 0xe0 ? 0xa0 : 0x80, hi = b === 0xed ? 0x9f : 0xbf; // no overlongs, no surrogates
    return b1 >= lo && b1 <= hi && continuation(bytes, i + 2) ? 3 : 0;
  }
  if (b >= 0xf0 && b <= 0xf4) {
    if (i + 1 >= bytes.length) return 0;
    const b1 = bytes[i + 1];
    const lo = b === 0xf0 ? 0x90 : 0x80, hi = b === 0xf4 ? 0x8f : 0xbf; // no overlongs, nothing past U+10FFFF
    return b1 >= lo && b1 <= hi && continuation(bytes, i + 2) && continuation(bytes, i + 3) ? 4 : 0;
  }
  return 0;
}

function decodeEscaping(bytes: Uint8Array): string {
  const units = new Uint16Array(bytes.length); // never more UTF-16 units than bytes
  let n = 0;
  for (let i = 0; i < bytes.length;) {
    const len = sequenceLength(bytes, i);
    const b = bytes[i];
    if (len === 1) units[n++] = b;
    else if (len === 2) units[n++] = ((b & 0x1f) << 6) | (bytes[i + 1] & 0x3f);
    else if (len === 3) units[n++] = ((b & 0x0f) << 12) | ((bytes[i + 1] & 0x3f) << 6) | (bytes[i + 2] & 0x3f);
    else if (len === 4) {
      const cp = ((b & 0x07) << 18) | ((bytes[i + 1] & 0x3f) << 12) | ((bytes[i + 2] & 0x3f) << 6) | (bytes[i + 3] & 0x3f);
      units[n++] = 0xd800 + ((cp - 0x10000) >> 10);
      units[n++] = 0xdc00 + ((cp - 0x10000) & 0x3ff);
    } else units[n++] = 0xdc00 + b; // one escaped byte; decoding resumes at the next byte
    i += len === 0 ? 1 : len;
  }
  let s = "";
  for (let at = 0; at < n; at += 8192) s += String.fromCharCode(...units.subarray(at, Math.min(n, at + 8192)));
  return s;
}

/**
 * A chunk's UTF-8 bytes, written into `out` (which must hold 3 × chunk.length bytes);
 * returns the byte count. A lone U+DC80..U+DCFF is the escaped byte it stands for; any
 * other lone surrogate encodes as U+FFFD, as TextEncoder does.
 */
export function utf8Bytes(chunk: string, out: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < chunk.length; i++) {
    let c = chunk.charCodeAt(i);
    if (c < 0x80) out[n++] = c;
    else if (c < 0x800) {
      out[n++] = 0xc0 | (c >> 6);
      out[n++] = 0x80 | (c & 0x3f);
    } else {
      if (c >= 0xd800 && c <= 0xdfff) {
        const next = i + 1 < chunk.length ? chunk.charCodeAt(i + 1) : 0;
        if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
          const cp = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
          out[n++] = 0xf0 | (cp >> 18);
          out[n++] = 0x80 | ((cp >> 12) & 0x3f);
          out[n++] = 0x80 | ((cp >> 6) & 0x3f);
          out[n++] = 0x80 | (cp & 0x3f);
          i++;
          continue;
        }
        if (c >= 0xdc80 && c <= 0xdcff) {
          out[n++] = c - 0xdc00;
          continue;
        }
        c = 0xfffd;
      }
      out[n++] = 0xe0 | (c >> 12);
      out[n++] = 0x80 | ((c >> 6) & 0x3f);
      out[n++] = 0x80 | (c & 0x3f);
    }
  }
  return n;
}

/** `text` with every lone surrogate replaced by U+FFFD (what UTF-8 encoding would do to it). */
export function wellFormed(text: string): string {
  const t = text as unknown as { isWellFormed?: () => boolean; toWellFormed?: () => string };
  if (t.isWellFormed && t.toWellFormed) return t.isWellFormed() ? text : t.toWellFormed();
  return Buffer.from(text, "utf8").toString("utf8");
}
