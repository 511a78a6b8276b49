/**
 * Byte-level tokenizer: one token per UTF-8 byte plus <|endoftext|> (id 256).
 * Lossless on any input, including invalid UTF-8 (decodeBytes returns the exact bytes).
 * The BPE tokenizer builds on these bytes.
 */
export class ByteTokenizer {
  readonly vocabSize = 257;
  readonly eot = 256;

  fingerprint(): string {
    return "bytes-v1";
  }

  /** How a tokenizer thread rebuilds this tokenizer (corpus preparation). */
  recipe(): { kind: "bytes" } {
    return { kind: "bytes" };
  }

  encode(text: string): Int32Array {
    return Int32Array.from(Buffer.from(text, "utf8"));
  }

  encodeBytes(bytes: Uint8Array): Int32Array {
    return Int32Array.from(bytes);
  }

  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    const out: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id < 0 || id > 256 || !Number.isInteger(id)) throw new RangeError(`ByteTokenizer.decode: id ${id} is not a byte token (0..256)`);
      if (id < 256) out.push(id);
    }
    return Uint8Array.from(out);
  }

  /** Text (invalid UTF-8 sequences render as U+FFFD; use decodeBytes for the exact bytes). */
  decode(ids: ArrayLike<number>): string {
    return Buffer.from(this.decodeBytes(ids)).toString("utf8");
  }
}

/** Concatenates documents into one token stream, each followed by the end-of-text token. */
export function concatDocuments(docs: Int32Array[], eot: number): Int32Array {
  const total = docs.reduce((s, d) => s + d.length + 1, 0);
  const out = new Int32Array(total);
  let at = 0;
  for (const d of docs) {
    out.set(d, at);
    at += d.length;
    out[at++] = eot;
  }
  return out;
}

/** Cross-entropy (nats per token) of `val` under the unigram distribution of `train` (add-one smoothed). */
export function unigramCrossEntropy(train: Int32Array, val: Int32Array, vocabSize: number): number {
  const counts = new Float64Array(vocabSize).fill(1);
  for (const t of train) counts[t]++;
  const total = train.length + vocabSize;
  let nll = 0;
  for (const t of val) nll -= Math.log(counts[t] / total);
  return nll / val.length;
}
