/**
 * Inference in bounded pieces. The stepwise variants of zero-shot scoring
 * (`classifyCausalSteps`, `classifyMaskedSteps`), embedding (`embedTextsSteps`) and classifier
 * prediction (`SequenceClassifier.predictSteps`, `AdaptedModel.predictSteps`) are generators:
 * they tokenize in slices of at most `pieceChars` characters and run forwards of at most
 * `pieceTokens` tokens, yielding after each piece what it did. A server runs one piece per
 * event-loop turn, interleaves other work between them, and drops the rest when its client
 * leaves; the results equal the one-call functions'. Once the inputs are tokenized, and before
 * any forward, each yields one plan (what the model will read), so a caller can refuse
 * oversized work before it runs.
 *
 *     const it = classifyCausalSteps(gpt, tok, labels, examples, prompt, { pieceTokens: 512 });
 *     let r = it.next();
 *     for (; !r.done; r = it.next()) if (r.value.kind === "plan") checkLimits(r.value);
 *     r.value.probs;
 */

export interface PieceOptions {
  /**
   * Most tokens one forward reads, padding included (a sequence longer than this still runs,
   * alone). A function is read before each piece, so the caller may resize pieces as it goes.
   */
  pieceTokens?: number | (() => number);
  /** Most characters tokenized in one piece. */
  pieceChars?: number;
  /** Most sequences in one forward. */
  pieceRows?: number;
}

/** Yielded once, after tokenization and before any forward. */
export interface PiecePlan {
  kind: "plan";
  /** Sequences the model will read (zero-shot on a causal LM: one per input and label). */
  sequences: number;
  /** Tokens the model will read, after truncation to its context. */
  tokens: number;
  /** Tokens of the inputs as given (before truncation); the usage a request is billed. */
  inputTokens: number;
}

/** What a piece did: characters tokenized, or the padded tokens of one forward. */
export type PieceDone = { kind: "tokenize"; chars: number } | { kind: "forward"; tokens: number };

/** A step generator: yields after each piece, and the plan once before the first forward. */
export type Steps<R> = Generator<PiecePlan | PieceDone, R, void>;

export const DEFAULT_PIECE_TOKENS = 512;
export const DEFAULT_PIECE_CHARS = 32_768;

/** Runs a step generator to its end in one call (what the one-call functions amount to). */
export function runSteps<R>(steps: Steps<R>): R {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** Each input mapped by `encode` (a tokenizer), yielding after every `pieceChars` characters of input. */
export function* tokenizeSteps<I, T>(inputs: readonly I[], encode: (input: I) => T, { pieceChars = DEFAULT_PIECE_CHARS }: PieceOptions = {},
  chars: (input: I) => number = (x) => (typeof x === "string" ? x.length : JSON.stringify(x).length)): Generator<PieceDone, T[], void> {
  const out: T[] = [];
  let used = 0;
  for (const x of inputs) {
    const n = chars(x);
    if (used > 0 && used + n > pieceChars) {
      yield { kind: "tokenize", chars: used };
      used = 0;
    }
    out.push(encode(x));
    used += n;
  }
  if (used > 0) yield { kind: "tokenize", chars: used };
  return out;
}

/**
 * Indices of sequences in order of length, cut into pieces whose padded size (rows × the
 * longest) stays within the token budget, read before each piece.
 */
export const paddedTokens = (piece: readonly number[], lengths: readonly number[]): number => piece.length * Math.max(...piece.map((i) => lengths[i]));

export function* lengthPieces(lengths: readonly number[], { pieceTokens = DEFAULT_PIECE_TOKENS, pieceRows = 64 }: PieceOptions = {}): Generator<number[], void, void> {
  const budget = typeof pieceTokens === "function" ? pieceTokens : () => pieceTokens;
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[a] - lengths[b] || a - b);
  let at = 0;
  while (at < order.length) {
    const limit = budget();
    const piece = [order[at++]];
    while (at < order.length && piece.length < pieceRows && (piece.length + 1) * lengths[order[at]] <= limit) piece.push(order[at++]);
    yield piece;
  }
}

export const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);
