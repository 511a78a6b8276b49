/**
 * The byte level under BPE, as GPT-2 defined it, so vocabularies and merges written here
 * read the same in every Hugging Face tokenizer:
 * - each of the 256 byte values has a printable stand-in character (GPT-2's
 *   bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes
 *   take U+0100 upwards in byte order), so a token is a string of stand-ins;
 * - a pre-tokenizer splits text into chunks (contractions, letter runs, digit runs,
 *   other runs, whitespace) that merges never cross.
 */

/** byte value → its stand-in character. */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const chars = new Array<string>(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    chars[b] = String.fromCharCode(printable ? b : next++);
  }
  return chars;
})();

/** Stand-in character code → byte value, or -1 where the character stands for no byte. */
export const CHAR_TO_BYTE: Int16Array = (() => {
  const table = new Int16Array(512).fill(-1);
  BYTE_TO_CHAR.forEach((c, b) => (table[c.charCodeAt(0)] = b));
  return table;
})();

/**
 * The byte values in the order their stand-ins sort (by code point): the order Hugging
 * Face's trainer and GPT-2's vocabulary give the 256 byte tokens.
 */
export const BYTES_IN_VOCAB_ORDER: readonly number[] = Array.from({ length: 256 }, (_, b) => b)
  .sort((x, y) => BYTE_TO_CHAR[x].charCodeAt(0) - BYTE_TO_CHAR[y].charCodeAt(0));

/** A token's stand-in string → its bytes; null if some character stands for no byte. */
export function charsToBytes(token: string): Uint8Array | null {
  const out = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const code = token.charCodeAt(i);
    const b = code < 512 ? CHAR_TO_BYTE[code] : -1;
    if (b < 0) return null;
    out[i] = b;
  }
  return out;
}

/** Bytes → their stand-in string. */
export function bytesToChars(bytes: ArrayLike<number>): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_CHAR[bytes[i]];
  return s;
}

/**
 * GPT-2's pre-tokenizer pattern: English contractions, an optional space then letters,
 * an optional space then digits, an optional space then anything else, and whitespace
 * (a run followed by text gives up its last space, which then leads the next chunk).
 * Hugging Face's ByteLevel pre-tokenizer (use_regex: true) splits with this same pattern.
 */
export const PRETOKENIZE_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** The chunks of `text`, in order; joined they give `text` back. */
export function pretokenize(text: string): string[] {
  return text.match(PRETOKENIZE_PATTERN) ?? [];
}

const WHITESPACE = /\s/;

function isWhitespace(code: number): boolean {
  return code === 0x20 || (code >= 0x09 && code <= 0x0d) || (code > 0x7f && WHITESPACE.test(String.fromCharCode(code)));
}

/**
 * `text` cut into pieces of about `blockChars` characters at places no chunk crosses, so
 * a long text never becomes one giant array of chunks. The cut goes before the last
 * whitespace character ahead of a non-whitespace one: there the pattern splits the same
 * with or without the cut (the run before it ends a chunk either way, and that last
 * character starts the next chunk, alone or as the space leading a word).
 */
export function textBlocks(text: string, blockChars = 1 << 20): string[] {
  if (text.length <= blockChars) return [text];
  const blocks: string[] = [];
  let start = 0;
  for (let p = blockChars; p + 1 < text.length; p++) {
    if (!isWhitespace(text.charCodeAt(p)) || isWhitespace(text.charCodeAt(p + 1))) continue;
    blocks.push(text.slice(start, p));
    start = p;
    p = start + blockChars - 1;
  }
  blocks.push(text.slice(start));
  return blocks;
}
