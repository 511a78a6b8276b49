/**
 * Captions as CLIP text-tower input: the project's byte-level BPE ids, cut to fit, then the
 * eos token (where the text embedding is read), then padding to a fixed length.
 *
 *     const enc = new CaptionEncoder(tokenizer, 24);
 *     enc.encodeBatch(["a red apple", "a dog"]);   // Int32Array [2 * 24]
 */
import { trainBPE } from "../tokenizer/index.js";
import { BPETextTokenizer, type TextTokenizer } from "./tokenizer.js";

export class CaptionEncoder {
  readonly eos: number;
  readonly pad: number;
  constructor(readonly tokenizer: TextTokenizer, readonly length: number) {
    if (!Number.isInteger(length) || length < 2) throw new RangeError(`CaptionEncoder: length ${length} must be an integer >= 2 (at least one token and the eos)`);
    this.eos = tokenizer.eot;
    this.pad = tokenizer.special("[PAD]") ?? tokenizer.eot;
  }

  /** One caption -> exactly `length` ids: tokens (at most length - 1), eos, padding. */
  encodeInto(text: string, out: Int32Array, offset = 0): void {
    if (typeof text !== "string") throw new TypeError(`CaptionEncoder: caption must be a string, got ${typeof text}`);
    const ids = Array.from(this.tokenizer.encode(text)).slice(0, this.length - 1);
    out.fill(this.pad, offset, offset + this.length);
    for (let i = 0; i < ids.length; i++) out[offset + i] = ids[i];
    out[offset + ids.length] = this.eos;
  }

  encodeBatch(texts: readonly string[]): Int32Array {
    const out = new Int32Array(texts.length * this.length);
    texts.forEach((t, i) => this.encodeInto(t, out, i * this.length));
    return out;
  }
}

/** A small BPE vocabulary learned from captions (the text tower's tokenizer). */
export function trainCaptionTokenizer(captions: readonly string[], vocabSize = 1024): BPETextTokenizer {
  if (captions.length === 0) throw new Error("trainCaptionTokenizer: no captions to learn a vocabulary from");
  return new BPETextTokenizer(trainBPE(captions, { vocabSize }));
}
