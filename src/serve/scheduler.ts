/**
 * Continuous batching of generation across requests. Sequences join and leave between steps:
 * each step runs, in one packed base forward (packed.ts), the prompts of newly admitted
 * sequences (up to a prefill token budget) and one token of every decoding sequence,
 * whatever adapter each uses. Between steps the event loop turns, so new requests, streamed
 * writes and client disconnects are handled while generation runs.
 *
 *     const s = new Scheduler(gpt, { maxBatch: 32 });
 *     for await (const t of s.submit({ prompt, adapter, maxTokens: 16, temperature: 0 })) ...
 *
 * With maxBatch 1 it serves the same requests one at a time (the benchmark's baseline).
 */
import { KVCache, sampleToken } from "../models/gpt/generate.js";
import type { GPT } from "../models/gpt/model.js";
import { Rng } from "../tensor/rng.js";
import { forwardPacked, type LoRAWeights } from "./packed.js";

export interface SequenceRequest {
  prompt: number[];
  adapter: LoRAWeights | null;
  maxTokens: number;
  temperature?: number;
  topP?: number;
  seed?: number;
  stopTokens?: number[];
  /** Report log-probabilities: the sampled token's, and the top k alternatives' (default: none, which saves a pass over the vocabulary). */
  logprobs?: boolean;
  topLogprobs?: number;
  signal?: AbortSignal;
  /** Restricts which tokens may come next (response_format): applied to this sequence's logits only. */
  constraint?: TokenConstraint;
  /** Whose request this is, and the request (its choices share it): counted by queuedRequests. */
  tenant?: string;
  request?: object;
}

/**
 * A per-sequence filter over the vocabulary: `mask` sets the logits of tokens that may not
 * come next to -Infinity and returns how many remain (0 ends the sequence: "length");
 * `remaining` is how many tokens the sequence may still produce, this one included. `accept`
 * is told the sampled token; once `done()`, the sequence ends with "stop".
 */
export interface TokenConstraint {
  mask(logits: Float32Array, remaining: number): number;
  accept(token: number): void;
  done(): boolean;
}

export interface TokenEvent {
  token: number;
  /** log p of the sampled token under the model (before temperature); NaN unless requested. */
  logprob: number;
  top: { token: number; logprob: number }[];
}

export interface SequenceEnd {
  finishReason: "stop" | "length" | "cancelled";
  /** This sequence's share of the steps' compute time. */
  computeSeconds: number;
}

class Sequence {
  readonly events: TokenEvent[] = [];
  end: SequenceEnd | null = null;
  error: Error | null = null;
  cache: KVCache | null = null;
  generated = 0;
  next: number[];
  computeSeconds = 0;
  wake: (() => void) | null = null;
  readonly rng: Rng;
  constructor(readonly req: SequenceRequest) {
    this.next = req.prompt;
    this.rng = new Rng(req.seed ?? 0);
  }
  notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }
  finish(reason: SequenceEnd["finishReason"]): void {
    if (this.end !== null) return;
    this.end = { finishReason: reason, computeSeconds: this.computeSeconds };
    this.cache?.release();
    this.cache = null;
    this.notify();
  }
}

export interface SchedulerOptions {
  /** Most sequences decoding together (1 = one request at a time). */
  maxBatch?: number;
  /** Most prompt tokens prefilled in one step (at least one prompt is always admitted). */
  prefillTokens?: number;
}

export interface SchedulerStats {
  steps: number;
  tokens: number;
  active: number;
  waiting: number;
  /** Mean sequences per step. */
  meanBatch: number;
}

function logSoftmax(logits: Float32Array): Float64Array {
  let m = -Infinity;
  for (const v of logits) if (v > m) m = v;
  let z = 0;
  for (const v of logits) z += Math.exp(v - m);
  const lz = m + Math.log(z);
  return Float64Array.from(logits, (v) => v - lz);
}

/**
 * The next token: greedy, or a temperature sample in one O(V) pass when there is no nucleus
 * cut (sampleToken sorts the vocabulary, which costs more than a decode step's share of the
 * base forward once many rows share the step).
 */
function pick(logits: Float32Array, temperature: number, topP: number, rng: Rng): number {
  if (temperature === 0 || topP < 1) return sampleToken(logits, { temperature, topP }, rng);
  let m = -Infinity;
  for (const v of logits) if (v > m) m = v;
  let z = 0;
  for (const v of logits) z += Math.exp((v - m) / temperature);
  let r = rng.uniform() * z;
  for (let i = 0; i < logits.length; i++) {
    r -= Math.exp((logits[i] - m) / temperature);
    if (r <= 0) return i;
  }
  return logits.length - 1;
}

export class Scheduler {
  private readonly waiting: Sequence[] = [];
  private readonly active: Sequence[] = [];
  private running = false;
  private closed = false;
  private steps = 0;
  private tokens = 0;
  private rowsTotal = 0;
  readonly maxBatch: number;
  readonly prefillTokens: number;

  constructor(readonly model: GPT, { maxBatch = 32, prefillTokens = 512 }: SchedulerOptions = {}) {
    if (!(Number.isInteger(maxBatch) && maxBatch >= 1)) throw new RangeError(`Scheduler: maxBatch must be a positive integer, got ${maxBatch}`);
    this.maxBatch = maxBatch;
    this.prefillTokens = prefillTokens;
  }

  stats(): SchedulerStats {
    return { steps: this.steps, tokens: this.tokens, active: this.active.length, waiting: this.waiting.length, meanBatch: this.steps === 0 ? 0 : this.rowsTotal / this.steps };
  }

  /** A tenant's requests with a sequence waiting for a batch slot (a request's choices count once). */
  queuedRequests(tenant: string): number {
    const requests = new Set<object>();
    for (const s of this.waiting) if (s.end === null && s.req.tenant === tenant) requests.add(s.req.request ?? s);
    return requests.size;
  }

  /** Queues a sequence; iterate the result for its tokens. Leaving the loop early cancels it. */
  async *submit(req: SequenceRequest): AsyncGenerator<TokenEvent, SequenceEnd> {
    const ctx = this.model.config.n_positions;
    const V = this.model.vocabSize + (req.adapter?.added?.count ?? 0);  // an adapter's added tokens follow the vocabulary
    if (this.closed) throw new Error("scheduler: closed");
    if (req.prompt.length === 0) throw new RangeError("scheduler: the prompt is empty");
    if (req.prompt.length >= ctx) throw new RangeError(`scheduler: the prompt has ${req.prompt.length} tokens; the model's context is ${ctx}`);
    for (const t of req.prompt) if (!(Number.isInteger(t) && t >= 0 && t < V)) throw new RangeError(`scheduler: prompt token ${t} is out of range [0, ${V})`);
    const seq = new Sequence(req);
    const onAbort = () => seq.finish("cancelled");
    req.signal?.addEventListener("abort", onAbort, { once: true });
    if (req.signal?.aborted) seq.finish("cancelled");
    if (req.maxTokens <= 0) seq.finish("length");
    if (seq.end === null) {
      this.waiting.push(seq);
      this.kick();
    }
    try {
      for (;;) {
        while (seq.events.length > 0) yield seq.events.shift()!;
        if (seq.error !== null) throw seq.error;
        if (seq.end !== null) return seq.end;
        await new Promise<void>((resolve) => (seq.wake = resolve));
      }
    } finally {
      req.signal?.removeEventListener("abort", onAbort);
      seq.finish("cancelled");  // no-op if it already ended; otherwise the consumer left early
    }
  }

  close(): void {
    this.closed = true;
    for (const s of [...this.waiting, ...this.active]) s.finish("cancelled");
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    setImmediate(() => this.step());
  }

  private step(): void {
    // Drop sequences that ended (cancelled by their client) since the last step.
    for (const list of [this.active, this.waiting]) {
      for (let i = list.length - 1; i >= 0; i--) if (list[i].end !== null) list.splice(i, 1);
    }
    let budget = this.prefillTokens;
    const admitted: Sequence[] = [];
    while (this.waiting.length > 0 && this.active.length + admitted.length < this.maxBatch) {
      const s = this.waiting[0];
      if (admitted.length > 0 && s.next.length > budget) break;
      budget -= s.next.length;
      admitted.push(this.waiting.shift()!);
    }
    const cfg = this.model.config;
    for (const s of admitted) s.cache = new KVCache(cfg.n_layer, cfg.n_positions, cfg.n_embd);
    const batch = [...this.active, ...admitted];
    this.active.push(...admitted);
    if (batch.length > 0) this.run(batch);
    for (let i = this.active.length - 1; i >= 0; i--) if (this.active[i].end !== null) this.active.splice(i, 1);
    if (this.active.length > 0 || this.waiting.length > 0) setImmediate(() => this.step());
    else this.running = false;
  }

  private run(batch: Sequence[]): void {
    const t0 = performance.now();
    let logits: Float32Array[];
    try {
      logits = forwardPacked(this.model, batch.map((s) => ({ tokens: s.next, cache: s.cache!, adapter: s.req.adapter })));
    } catch (e) {
      for (const s of batch) {
        s.error = e instanceof Error ? e : new Error(String(e));
        s.finish("cancelled");
      }
      return;
    }
    const seconds = (performance.now() - t0) / 1000;
    const rows = batch.reduce((n, s) => n + s.next.length, 0);
    this.steps++;
    this.rowsTotal += batch.length;
    batch.forEach((s, i) => {
      s.computeSeconds += (seconds * s.next.length) / rows;
      const r = s.req;
      if (r.constraint !== undefined) {
        const remaining = Math.min(r.maxTokens - s.generated, s.cache!.capacity - s.cache!.length + 1);
        if (r.constraint.mask(logits[i], remaining) === 0) return s.finish("length");
      }
      const token = pick(logits[i], r.temperature ?? 0, r.topP ?? 1, s.rng);
      if ((r.stopTokens ?? []).includes(token)) return s.finish("stop");
      if (r.logprobs) {
        const lp = logSoftmax(logits[i]);
        const k = r.topLogprobs ?? 0;
        const top = k > 0 ? Array.from(lp.keys()).sort((a, b) => lp[b] - lp[a]).slice(0, k).map((t) => ({ token: t, logprob: lp[t] })) : [];
        s.events.push({ token, logprob: lp[token], top });
      } else {
        s.events.push({ token, logprob: NaN, top: [] });
      }
      s.generated++;
      this.tokens++;
      s.next = [token];
      s.notify();
      r.constraint?.accept(token);
      if (r.constraint?.done()) s.finish("stop");
      else if (s.generated >= r.maxTokens) s.finish("length");
      else if (s.cache!.length + 1 > s.cache!.capacity) s.finish("length");
    });
  }
}
