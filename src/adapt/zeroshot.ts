/**
 * Zero-shot and few-shot (in-context) classification by label likelihood, with no training.
 *
 * Causal LM: each label's score is the summed log-probability of its verbalizer tokens after
 * the prompt ("Review: {text}\nSentiment:" + " positive"); k labeled demonstrations may be
 * prepended: interleaved over the labels and taken while whole ones fit the context beside the
 * query (never more than fit; demonstrationsUsed reports how many each query got). Masked LM: a cloze ("{text} It was [MASK].") scored by the probability of each
 * label's single-token verbalizer at the mask. Scores become label probabilities by a softmax
 * over the labels. Contextual calibration divides them by the probabilities the same prompt
 * gives content-free inputs ("N/A", ...) and renormalises.
 *
 *     const clf = { template: "Review: {text}\nSentiment:", verbalizers: { negative: " bad", positive: " good" } };
 *     const { probs } = classifyCausal(gpt, tok, ["negative", "positive"], task.test, { ...clf, calibrate: true });
 */
import type { TextTokenizer } from "../data/tokenizer.js";
import type { BertForMaskedLM } from "../models/bert/model.js";
import type { GPT } from "../models/gpt/model.js";
import { lengthBatches } from "../models/batching.js";
import { noGrad } from "../tensor/autograd.js";
import { ids as idsTensor } from "../tensor/tensor.js";
import { embedding, softmax } from "../tensor/ops/nn.js";
import { reshape } from "../tensor/ops/views.js";
import { type Example, isPair } from "../tasks/task.js";
import { type PieceOptions, type Steps, lengthPieces, paddedTokens, sum, tokenizeSteps } from "./steps.js";

export class PromptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PromptError";
  }
}

export interface PromptOptions {
  /** With {text}, or {text_a} and {text_b} for pairs. */
  template: string;
  /** The text that follows the prompt for each label (a leading space usually matters). */
  verbalizers: Record<string, string>;
  /** Labeled demonstrations for in-context few-shot, each rendered as prompt + verbalizer. */
  demonstrations?: Example[];
  /** Between demonstrations and the query (default "\n\n"). */
  separator?: string;
  /** Contextual calibration against content-free inputs. */
  calibrate?: boolean;
  /** The content-free inputs (default ["N/A", "", "[MASK]"]). */
  contentFree?: string[];
}

export interface ZeroShotResult {
  /** Per example, a probability distribution over the labels (task order). */
  probs: number[][];
  /** The averaged content-free distribution the probabilities were divided by, if calibrated. */
  calibration: number[] | null;
  /** Causal LM: per example, how many demonstrations fit in the context with it. */
  demonstrationsUsed?: number[];
}

const DEFAULT_CONTENT_FREE = ["N/A", "", "[MASK]"];

/** The template filled with an example's fields. */
export function renderPrompt(template: string, e: Example | string): string {
  const fields: Record<string, string> = typeof e === "string"
    ? { text: e, text_a: e, text_b: e }
    : isPair(e) ? { text: `${e.textA}\n${e.textB}`, text_a: e.textA, text_b: e.textB } : { text: e.text, text_a: e.text, text_b: "" };
  return template.replace(/\{(text|text_a|text_b)\}/g, (_, k: string) => fields[k]);
}

function checkOptions(op: string, labels: string[], o: PromptOptions): void {
  if (labels.length < 2) throw new PromptError(`${op}: needs at least 2 labels, got ${JSON.stringify(labels)}`);
  if (!/\{(text|text_a|text_b)\}/.test(o.template)) throw new PromptError(`${op}: the template ${JSON.stringify(o.template)} has no {text} (or {text_a}/{text_b}) field`);
  for (const l of labels) {
    if (typeof o.verbalizers[l] !== "string" || o.verbalizers[l] === "") throw new PromptError(`${op}: no verbalizer for label ${JSON.stringify(l)}; verbalizers are given for ${JSON.stringify(Object.keys(o.verbalizers))}`);
  }
  for (const l of Object.keys(o.verbalizers)) if (!labels.includes(l)) throw new PromptError(`${op}: verbalizer for unknown label ${JSON.stringify(l)}; labels are ${JSON.stringify(labels)}`);
  for (const d of o.demonstrations ?? []) if (!labels.includes(d.label)) throw new PromptError(`${op}: demonstration with unknown label ${JSON.stringify(d.label)}`);
}

const encode = (tok: TextTokenizer, text: string): number[] => Array.from(tok.encode(text));

function softmaxRow(scores: number[]): number[] {
  const m = Math.max(...scores);
  const e = scores.map((s) => Math.exp(s - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

/** Contextual calibration: p / p_cf, renormalised. */
export function applyCalibration(probs: number[][], contentFree: number[]): number[][] {
  return probs.map((row) => {
    const q = row.map((p, i) => p / Math.max(contentFree[i], 1e-12));
    const z = q.reduce((a, b) => a + b, 0);
    return q.map((v) => v / z);
  });
}

function meanRows(rows: number[][]): number[] {
  return rows[0].map((_, j) => rows.reduce((s, r) => s + r[j], 0) / rows.length);
}

// ---------------------------------------------------------------- causal LM

/** How many context tokens a pair keeps in `maxT` positions (the newest); refuses pairs that cannot be scored. */
function contextKept(context: readonly number[], continuation: readonly number[], maxT: number): number {
  if (continuation.length === 0) throw new PromptError("continuationLogProbs: an empty continuation");
  if (continuation.length >= maxT) throw new PromptError(`continuationLogProbs: a continuation of ${continuation.length} tokens leaves no room for context in ${maxT} positions`);
  if (context.length === 0) throw new PromptError("continuationLogProbs: an empty context (the first continuation token needs a token before it)");
  return Math.min(context.length, maxT - continuation.length);
}

/**
 * Log-probabilities of each continuation after its context, one forward per sequence,
 * batched by total length: returns the summed log p of the continuation tokens.
 */
export function continuationLogProbs(model: GPT, pairs: { context: number[]; continuation: number[] }[]): number[] {
  const maxT = model.config.n_positions;
  const V = model.config.vocab_size;
  const seqs = pairs.map(({ context, continuation }) => {
    const keep = contextKept(context, continuation, maxT);  // drop the oldest context tokens
    return { ids: [...context.slice(context.length - keep), ...continuation], start: keep };
  });
  const out = new Array<number>(pairs.length);
  for (const batch of lengthBatches(seqs.map((s) => s.ids.length), 32)) {
    const T = seqs[batch[0]].ids.length;
    const logits = noGrad(() => model.forward(idsTensor(batch.map((i) => seqs[i].ids))).logits.toArray());
    batch.forEach((i, r) => {
      const { ids, start } = seqs[i];
      let total = 0;
      for (let t = start; t < T; t++) {
        const row = logits.subarray((r * T + t - 1) * V, (r * T + t) * V);  // the logits that predict token t
        let m = -Infinity;
        for (let v = 0; v < V; v++) if (row[v] > m) m = row[v];
        let z = 0;
        for (let v = 0; v < V; v++) z += Math.exp(row[v] - m);
        total += row[ids[t]] - m - Math.log(z);
      }
      out[i] = total;
    });
  }
  return out;
}

/** Demonstrations interleaved over their labels (one of each label in turn), so any prefix of them is balanced. */
export function balancedDemonstrations(demos: readonly Example[], labels: readonly string[]): Example[] {
  const byLabel = labels.map((l) => demos.filter((d) => d.label === l));
  const out: Example[] = [];
  for (let i = 0; out.length < demos.length; i++) for (const group of byLabel) if (i < group.length) out.push(group[i]);
  return out;
}

/**
 * In-context prompts that fit: for each input, the balanced demonstrations are taken in turn while
 * they, the input's prompt and the longest verbalizer fit the model's `maxT` positions; the first
 * that would not fit ends the prefix (never a demonstration cut short). Returns each input's
 * context ids and how many demonstrations it holds.
 */
export function fittedContexts(tok: TextTokenizer, labels: string[], inputs: readonly (Example | string)[], o: PromptOptions, maxT: number): { contexts: number[][]; used: number[] } {
  const sep = o.separator ?? "\n\n";
  const demos = balancedDemonstrations(o.demonstrations ?? [], labels).map((d) => encode(tok, renderPrompt(o.template, d) + o.verbalizers[d.label] + sep));
  const longestVerbalizer = Math.max(...labels.map((l) => encode(tok, o.verbalizers[l]).length));
  const used: number[] = [];
  const contexts = inputs.map((e) => {
    const query = encode(tok, renderPrompt(o.template, e));
    let room = maxT - longestVerbalizer - query.length;
    const prefix: number[] = [];
    let n = 0;
    for (const d of demos) {
      if (d.length > room) break;
      prefix.push(...d);
      room -= d.length;
      n++;
    }
    used.push(n);
    return [...prefix, ...query];
  });
  return { contexts, used };
}

function scoreCausal(model: GPT, tok: TextTokenizer, labels: string[], inputs: (Example | string)[], o: PromptOptions, used?: number[]): number[][] {
  const verbIds = labels.map((l) => encode(tok, o.verbalizers[l]));
  const fitted = fittedContexts(tok, labels, inputs, o, model.config.n_positions);
  used?.push(...fitted.used);
  const pairs = fitted.contexts.flatMap((context) => verbIds.map((continuation) => ({ context, continuation })));
  const lp = continuationLogProbs(model, pairs);
  return inputs.map((_, i) => softmaxRow(lp.slice(i * labels.length, (i + 1) * labels.length)));
}

/**
 * classifyCausal in pieces (steps.ts): the prompts are tokenized in slices, then the
 * (input, label) sequences and the content-free ones run in forwards of bounded size, shortest
 * first. The probabilities equal classifyCausal's.
 */
export function* classifyCausalSteps(model: GPT, tok: TextTokenizer, labels: string[], examples: readonly (Example | string)[], o: PromptOptions, p: PieceOptions = {}): Steps<ZeroShotResult> {
  checkOptions("classifyCausal", labels, o);
  const verbIds = labels.map((l) => encode(tok, o.verbalizers[l]));
  const contentFree = o.calibrate ? (o.contentFree ?? DEFAULT_CONTENT_FREE) : [];
  const inputs = [...examples, ...contentFree];
  const maxT0 = model.config.n_positions;
  const fitted = yield* tokenizeSteps(inputs, (e) => fittedContexts(tok, labels, [e], o, maxT0), p);
  const contexts = fitted.map((f) => f.contexts[0]);
  const used = fitted.slice(0, examples.length).map((f) => f.used[0]);
  const pairs = contexts.flatMap((context) => verbIds.map((continuation) => ({ context, continuation })));
  const maxT = model.config.n_positions;
  const lengths = pairs.map(({ context, continuation }) => contextKept(context, continuation, maxT) + continuation.length);
  yield { kind: "plan", sequences: pairs.length, tokens: sum(lengths), inputTokens: sum(contexts.slice(0, examples.length).map((c) => c.length)) };
  const lp = new Array<number>(pairs.length);
  for (const piece of lengthPieces(lengths, p)) {
    const scores = continuationLogProbs(model, piece.map((i) => pairs[i]));
    piece.forEach((i, k) => (lp[i] = scores[k]));
    yield { kind: "forward", tokens: paddedTokens(piece, lengths) };
  }
  const K = labels.length;
  const rows = inputs.map((_, i) => softmaxRow(lp.slice(i * K, (i + 1) * K)));
  const probs = rows.slice(0, examples.length);
  if (!o.calibrate) return { probs, calibration: null, demonstrationsUsed: used };
  const calibration = meanRows(rows.slice(examples.length));
  return { probs: applyCalibration(probs, calibration), calibration, demonstrationsUsed: used };
}

/** Label probabilities for each example from a causal LM (zero-shot, or few-shot with the demonstrations that fit). */
export function classifyCausal(model: GPT, tok: TextTokenizer, labels: string[], examples: Example[], o: PromptOptions): ZeroShotResult {
  checkOptions("classifyCausal", labels, o);
  const used: number[] = [];
  const probs = scoreCausal(model, tok, labels, examples, o, used);
  if (!o.calibrate) return { probs, calibration: null, demonstrationsUsed: used };
  const calibration = meanRows(scoreCausal(model, tok, labels, o.contentFree ?? DEFAULT_CONTENT_FREE, o));
  return { probs: applyCalibration(probs, calibration), calibration, demonstrationsUsed: used };
}

// ---------------------------------------------------------------- masked LM (cloze)

export interface ClozeOptions extends Omit<PromptOptions, "demonstrations" | "separator"> {}

function singleTokens(tok: TextTokenizer, labels: string[], verbalizers: Record<string, string>): number[] {
  return labels.map((l) => {
    const ids = encode(tok, verbalizers[l]);
    if (ids.length !== 1) throw new PromptError(`classifyMasked: the verbalizer ${JSON.stringify(verbalizers[l])} of label ${JSON.stringify(l)} is ${ids.length} tokens; a cloze needs single-token verbalizers`);
    return ids[0];
  });
}

/** The prompt's ids with the [MASK] token in place, truncating the text side to fit `maxT`. */
function clozeIds(tok: TextTokenizer, template: string, e: Example | string, mask: number, maxT: number): { ids: number[]; at: number } {
  const parts = renderPrompt(template, e).split("[MASK]");
  if (parts.length !== 2) throw new PromptError(`classifyMasked: the template must hold exactly one [MASK], got ${parts.length - 1}`);
  let before = encode(tok, parts[0]);
  const after = encode(tok, parts[1]);
  const room = maxT - 1 - after.length;
  if (room < 0) throw new PromptError(`classifyMasked: the template's tail is ${after.length} tokens; the model reads ${maxT}`);
  if (before.length > room) before = before.slice(0, room);  // cut the text's end, keep the cue after it
  return { ids: [...before, mask, ...after], at: before.length };
}

function scoreMasked(model: BertForMaskedLM, tok: TextTokenizer, labels: string[], inputs: (Example | string)[], o: ClozeOptions): number[][] {
  const mask = tok.special("[MASK]");
  if (mask === undefined) throw new PromptError("classifyMasked: the tokenizer has no [MASK] token");
  const verb = singleTokens(tok, labels, o.verbalizers);
  const seqs = inputs.map((e) => clozeIds(tok, o.template, e, mask, model.config.max_position_embeddings));
  const out = new Array<number[]>(inputs.length);
  for (const members of lengthBatches(seqs.map((s) => s.ids.length), 32)) scoreCloze(model, seqs, members, verb, out);
  return out;
}

/** The verbalizers' renormalised probabilities at the mask, for `members` (all of one length), into out. */
function scoreCloze(model: BertForMaskedLM, seqs: { ids: number[]; at: number }[], members: number[], verb: number[], out: number[][]): void {
  const V = model.config.vocab_size;
  const T = seqs[members[0]].ids.length;
  const probs = noGrad(() => {
    const h = model.hidden(idsTensor(members.map((i) => seqs[i].ids)));
    const C = h.shape[2];
    const rows = idsTensor(members.map((i, r) => r * T + seqs[i].at), [members.length]);
    return softmax(model.head(embedding(rows, reshape(h, [members.length * T, C])))).toArray();
  });
  members.forEach((i, r) => {
    const p = verb.map((v) => probs[r * V + v]);
    const z = p.reduce((a, b) => a + b, 0);
    out[i] = z > 0 ? p.map((x) => x / z) : p.map(() => 1 / p.length);
  });
}

/** classifyMasked in pieces (steps.ts); the probabilities equal classifyMasked's. */
export function* classifyMaskedSteps(model: BertForMaskedLM, tok: TextTokenizer, labels: string[], examples: readonly (Example | string)[], o: ClozeOptions, p: PieceOptions = {}): Steps<ZeroShotResult> {
  checkOptions("classifyMasked", labels, o);
  if (!o.template.includes("[MASK]")) throw new PromptError(`classifyMasked: the template ${JSON.stringify(o.template)} has no [MASK]`);
  const mask = tok.special("[MASK]");
  if (mask === undefined) throw new PromptError("classifyMasked: the tokenizer has no [MASK] token");
  const verb = singleTokens(tok, labels, o.verbalizers);
  const contentFree = o.calibrate ? (o.contentFree ?? DEFAULT_CONTENT_FREE).filter((s) => s !== "[MASK]") : [];
  const inputs = [...examples, ...contentFree];
  const maxT = model.config.max_position_embeddings;
  const seqs = yield* tokenizeSteps(inputs, (e) => clozeIds(tok, o.template, e, mask, maxT), p);
  const lengths = seqs.map((s) => s.ids.length);
  yield { kind: "plan", sequences: seqs.length, tokens: sum(lengths), inputTokens: sum(lengths.slice(0, examples.length)) };
  const rows = new Array<number[]>(seqs.length);
  for (const piece of lengthPieces(lengths, p)) {
    for (const members of lengthBatches(piece.map((i) => lengths[i]))) scoreCloze(model, seqs, members.map((k) => piece[k]), verb, rows);
    yield { kind: "forward", tokens: paddedTokens(piece, lengths) };
  }
  const probs = rows.slice(0, examples.length);
  if (!o.calibrate) return { probs, calibration: null };
  const calibration = meanRows(rows.slice(examples.length));
  return { probs: applyCalibration(probs, calibration), calibration };
}

/** Label probabilities from a masked LM's prediction at the cloze's [MASK]. */
export function classifyMasked(model: BertForMaskedLM, tok: TextTokenizer, labels: string[], examples: Example[], o: ClozeOptions): ZeroShotResult {
  checkOptions("classifyMasked", labels, o);
  if (!o.template.includes("[MASK]")) throw new PromptError(`classifyMasked: the template ${JSON.stringify(o.template)} has no [MASK]`);
  const probs = scoreMasked(model, tok, labels, examples, o);
  if (!o.calibrate) return { probs, calibration: null };
  const calibration = meanRows(scoreMasked(model, tok, labels, (o.contentFree ?? DEFAULT_CONTENT_FREE).filter((s) => s !== "[MASK]"), o));
  return { probs: applyCalibration(probs, calibration), calibration };
}
