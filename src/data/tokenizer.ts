/**
 * The tokenizer a run uses, behind one interface: byte-level BPE from a tokenizer.json,
 * or plain bytes (257 ids) for models saved without one.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { BPETokenizer, type IdBuffer } from "../tokenizer/index.js";
import { ByteTokenizer } from "./bytes.js";
import type { TokenizerLike } from "./prepare.js";
import type { TokenizerRecipe } from "./pool.js";

export interface TextTokenizer extends TokenizerLike {
  decode(ids: ArrayLike<number>): string;
  /** Id of a special token such as "[MASK]", if the vocabulary has it. */
  special(token: string): number | undefined;
}

export class BPETextTokenizer implements TextTokenizer {
  readonly vocabSize: number;
  readonly eot: number;
  private print: string | null = null;
  constructor(readonly bpe: BPETokenizer) {
    this.vocabSize = bpe.vocabSize;
    const eot = bpe.tokenToId("<|endoftext|>");
    if (eot === undefined) throw new Error("tokenizer: the vocabulary has no <|endoftext|> token, which separates documents");
    this.eot = eot;
  }
  /** Raw text: a literal "<|endoftext|>" inside a document is text, not a separator. */
  encode(text: string): number[] {
    return this.bpe.encode(text, { specialTokens: false });
  }
  /** As encode, appending to `out` (corpus preparation: no array of ids a text). */
  encodeInto(text: string, out: IdBuffer): void {
    this.bpe.encodeInto(text, out);
  }
  decode(ids: ArrayLike<number>): string {
    return this.bpe.decode(ids);
  }
  special(token: string): number | undefined {
    return this.bpe.addedTokens.find((t) => t.content === token)?.id;
  }
  fingerprint(): string {
    this.print ??= createHash("sha256").update(JSON.stringify(this.bpe.toJSON())).digest("hex");
    return this.print;
  }
  /** How a tokenizer thread rebuilds this tokenizer (corpus preparation). */
  recipe(): TokenizerRecipe {
    return { kind: "bpe", json: this.bpe.toJSON() };
  }
}

export class ByteTextTokenizer extends ByteTokenizer implements TextTokenizer {
  special(token: string): number | undefined {
    return token === "<|endoftext|>" ? this.eot : undefined;
  }
}

/** The tokenizer saved beside a model (tokenizer.json), else byte-level. */
export function tokenizerFor(dir: string): TextTokenizer {
  const path = join(dir, "tokenizer.json");
  return existsSync(path) ? new BPETextTokenizer(BPETokenizer.load(path)) : new ByteTextTokenizer();
}

/**
 * A tokenizer with tokens added after its vocabulary (ids vocabSize, vocabSize + 1, ...), as
 * Hugging Face's add_special_tokens does: each added string in a text becomes its one id, the
 * text around it is encoded as before; decoding writes the added strings back.
 *
 *     const t = withAddedTokens(tokenizerFor("runs/small"), ["<|user|>", "<|assistant|>"]);
 *     t.encode("<|user|>\nhi");   // [V, ...ids of "\nhi"]
 */
export function withAddedTokens(inner: TextTokenizer, tokens: readonly string[]): TextTokenizer {
  if (tokens.length === 0) return inner;
  for (const t of tokens) if (t === "") throw new RangeError("withAddedTokens: an added token is an empty string");
  if (new Set(tokens).size !== tokens.length) throw new RangeError(`withAddedTokens: tokens repeat: ${JSON.stringify(tokens)}`);
  const base = inner.vocabSize;
  const ids = new Map(tokens.map((t, i) => [t, base + i]));
  // Longest first, so a token that is a prefix of another does not cut it.
  const pattern = new RegExp(`(${[...tokens].sort((a, b) => b.length - a.length).map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})`);
  return {
    vocabSize: base + tokens.length,
    eot: inner.eot,
    encode(text: string): number[] {
      const out: number[] = [];
      text.split(pattern).forEach((piece, i) => {
        if (i % 2 === 1) out.push(ids.get(piece)!);
        else if (piece !== "") out.push(...Array.from(inner.encode(piece)));
      });
      return out;
    },
    decode(list: ArrayLike<number>): string {
      let text = "", run: number[] = [];
      for (const id of Array.from(list)) {
        if (id < base) {
          run.push(id);
          continue;
        }
        text += inner.decode(run) + (tokens[id - base] ?? "");
        run = [];
      }
      return text + inner.decode(run);
    },
    special: (token: string) => ids.get(token) ?? inner.special(token),
    fingerprint: () => `${inner.fingerprint()}+${JSON.stringify(tokens)}`,
  };
}
