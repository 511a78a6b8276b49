/**
 * The tokenizer a run uses, behind one interface: byte-level BPE from a tokenizer.json,
 * or plain bytes (257 ids) for models saved without one.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { BPETokenizer } from "../tokenizer/index.js";
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
