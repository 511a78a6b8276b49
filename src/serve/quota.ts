/**
 * Token quotas as hard limits, and metering as tokens are delivered.
 *
 * Admission reserves the worst case in one registry transaction (registry/keys.ts): a generation
 * request its prompt + n × max_tokens, capped at what the key has left (max_tokens shrinks to
 * fit; below one token per choice the request is a 429), a fine-tuning job its planned training
 * tokens. A request's `RequestMeter` then moves tokens from the reservation to the request's
 * usage row as they are delivered, in batched commits: at least every METER_EVERY_TOKENS tokens
 * and every METER_EVERY_MS while tokens are pending. The end settles: the exact usage is
 * written and the rest of the reservation released.
 *
 * The bound: a server killed without warning loses, per request in flight, at most
 * METER_EVERY_TOKENS - 1 delivered tokens (prompt included) and never more than the last
 * METER_EVERY_MS of delivery; the reservations of the dead process are released at the next
 * start (keys.releaseOrphans), so its quota comes back.
 *
 *     const { maxTokens, meter } = admitGeneration(registry, key, { kind: "chat", model, prompt: 12, n: 2, maxTokens: 50 });
 *     meter.deliver(3);  ...  meter.settle({ promptTokens: 12, completionTokens: 41, computeSeconds });
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { defaultSteps } from "../adapt/finetune.js";
import { setfitPlan } from "../adapt/setfit.js";
import { type ApiKey, type FileEntry, type QuotaState, type Registry, RegistryUnavailableError, type Reservation, type UsageDelta, type UsageKind } from "../registry/index.js";
import { ApiError } from "./errors.js";

export const METER_EVERY_TOKENS = 16;
export const METER_EVERY_MS = 1000;
/** Settling retries while the registry is unreachable (about a minute in all). */
const SETTLE_RETRIES = 8;

function quotaError(key: ApiKey, s: QuotaState, wanted: string): ApiError {
  return new ApiError("insufficient_quota",
    `You exceeded your token quota: ${wanted}, but key ${key.prefix}… has ${s.available} of ${s.quota} tokens left (${s.used} used, ${s.reserved} reserved by work in flight).`);
}

/** Refuses work when a key has nothing left at all (the gate on every work route; reads are never refused). */
export async function checkQuotaLeft(registry: Registry, key: ApiKey): Promise<void> {
  if (key.tokenQuota === null) return;
  const s = await registry.keys.quota(key.id);
  if (s.available <= 0) throw quotaError(key, s, "this request needs tokens");
}

/** Moves a request's delivered tokens from its reservation to its usage row in batched commits. */
export class RequestMeter {
  private pendingPrompt = 0;
  private pendingCompletion = 0;
  private metered = { promptTokens: 0, completionTokens: 0 };
  private lastCommit = Date.now();
  private timer: NodeJS.Timeout | null = null;
  private promptBilled = false;
  private done = false;
  /** Commits run in order, one after another (the registry is asynchronous); settle waits for them. */
  private chain: Promise<void> = Promise.resolve();
  /** Commits made and not yet written. */
  private inFlight = 0;

  constructor(private readonly registry: Registry, readonly reservation: Reservation, private readonly promptTokens: number,
    private readonly every = { tokens: METER_EVERY_TOKENS, ms: METER_EVERY_MS }) {}

  /** Tokens about to be written to the client (the prompt counts with the first of them). */
  deliver(completionTokens: number): void {
    if (this.done) return;
    if (!this.promptBilled) {
      this.promptBilled = true;
      this.pendingPrompt = this.promptTokens;
    }
    this.pendingCompletion += completionTokens;
    if (this.pendingPrompt + this.pendingCompletion >= this.every.tokens || Date.now() - this.lastCommit >= this.every.ms) this.commit();
    else if (this.timer === null) {
      this.timer = setTimeout(() => this.commit(), this.every.ms);
      this.timer.unref();
    }
  }

  /** Commits what is pending now. */
  commit(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.lastCommit = Date.now();
    if (this.done || this.pendingPrompt + this.pendingCompletion === 0) return;
    const d = { promptTokens: this.pendingPrompt, completionTokens: this.pendingCompletion };
    this.pendingPrompt = this.pendingCompletion = 0;
    this.metered.promptTokens += d.promptTokens;
    this.metered.completionTokens += d.completionTokens;
    this.inFlight++;
    this.chain = this.chain.then(() => this.registry.keys.meter(this.reservation.id, d)).finally(() => this.inFlight--).catch(() => {
      // The registry was unreachable (a database restart): the tokens go back to pending and
      // ride with the next commit or the settle, so nothing delivered goes unbilled.
      this.metered.promptTokens -= d.promptTokens;
      this.metered.completionTokens -= d.completionTokens;
      if (this.done) this.lateFailed = { promptTokens: (this.lateFailed.promptTokens ?? 0) + d.promptTokens, completionTokens: (this.lateFailed.completionTokens ?? 0) + d.completionTokens };
      else {
        this.pendingPrompt += d.promptTokens;
        this.pendingCompletion += d.completionTokens;
      }
    });
  }

  /**
   * Before writing delivered tokens: waits while more than one commit is unwritten, so a stream
   * runs at most one batch ahead of its billing even when commits are slow (many replicas
   * committing to one key's row); a server killed mid-stream then loses at most about one batch.
   */
  async keepUp(): Promise<void> {
    if (this.inFlight > 1) await this.chain;
  }

  /** Resolves when the commits made so far are written. */
  flushed(): Promise<void> {
    return this.chain;
  }

  /** Tokens of commits that failed after settle had computed its delta (added to it). */
  private lateFailed: UsageDelta = {};

  /**
   * The end: with the request's final usage, writes exactly that (what was metered so far is
   * subtracted); without (the request failed), commits what was delivered. Either way the rest
   * of the reservation is released. Idempotent.
   */
  async settle(final?: UsageDelta): Promise<void> {
    if (this.done) return this.chain;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const d: UsageDelta = final === undefined
      ? { promptTokens: this.pendingPrompt, completionTokens: this.pendingCompletion }
      : {
        promptTokens: Math.max(0, (final.promptTokens ?? 0) - this.metered.promptTokens),
        completionTokens: Math.max(0, (final.completionTokens ?? 0) - this.metered.completionTokens),
        computeSeconds: final.computeSeconds ?? 0,
      };
    this.done = true;
    await this.chain;
    // Settling retries for a while (a database restart takes seconds); the reservation is
    // released by the next start of this replica if it never gets through.
    for (let attempt = 0; ; attempt++) {
      const late = this.lateFailed;
      this.lateFailed = {};
      const all: UsageDelta = { ...d, promptTokens: (d.promptTokens ?? 0) + (late.promptTokens ?? 0), completionTokens: (d.completionTokens ?? 0) + (late.completionTokens ?? 0) };
      try {
        await this.registry.keys.settle(this.reservation.id, all);
        return;
      } catch (e) {
        if (attempt >= SETTLE_RETRIES || !(e instanceof RegistryUnavailableError)) return;
        d.promptTokens = all.promptTokens;
        d.completionTokens = all.completionTokens;
        await new Promise((r) => setTimeout(r, 500 * 2 ** Math.min(attempt, 4)));
      }
    }
  }
}

/**
 * Admits a generation request against its key's quota: reserves prompt + n × maxTokens, or
 * as much as is left with maxTokens cut to fit (at least one token per choice), or refuses
 * with a 429. Returns the maxTokens to generate with and the request's meter.
 */
export async function admitGeneration(registry: Registry, key: ApiKey, r: { kind: UsageKind; model: string; prompt: number; n: number; maxTokens: number }): Promise<{ maxTokens: number; meter: RequestMeter }> {
  const min = r.prompt + r.n, max = r.prompt + r.n * r.maxTokens;
  const res = await registry.keys.reserve(key, { kind: r.kind, model: r.model, min, max });
  if (res === null) throw quotaError(key, await registry.keys.quota(key.id), `this request needs at least ${min} tokens (a ${r.prompt}-token prompt and one token for each of ${r.n} choice${r.n > 1 ? "s" : ""})`);
  const maxTokens = Math.min(r.maxTokens, Math.floor((res.granted - r.prompt) / r.n));
  return { maxTokens, meter: new RequestMeter(registry, res, r.prompt) };
}

/**
 * Admits work whose tokens are known before it runs (embeddings, classifications: the inputs'
 * tokens): reserves exactly that many or refuses with a 429. Settle the meter when the work is
 * done (`meter.settle({ promptTokens, computeSeconds })`); a failure (`meter.settle()`) bills nothing.
 */
export async function admitPrompt(registry: Registry, key: ApiKey, r: { kind: UsageKind; model: string; tokens: number }): Promise<RequestMeter> {
  const res = await registry.keys.reserve(key, { kind: r.kind, model: r.model, min: r.tokens, max: r.tokens });
  if (res === null) throw quotaError(key, await registry.keys.quota(key.id), `this request's input is ${r.tokens} tokens`);
  return new RequestMeter(registry, res, r.tokens);
}

/**
 * The most training tokens a fine-tuning job can use. A classifier job (lora, full, head) reads
 * steps × its batch's longest examples, each cut to the classifier's 128 tokens: a byte-level
 * tokenizer never makes more tokens than a text has bytes, and a JSONL line has at least as
 * many bytes as its text, so this is an upper bound. setfit reads, each step, at most two
 * texts per pair of the step (its defaults: pairs from the labeled count, 16 a step). A probe
 * trains on frozen features and counts none, nor do prototype and knn (no training). A generative job (a file without labels) trains packed rows of at most the
 * context's tokens: steps × batch × context, with its defaults (3 epochs over at most one row
 * per example, batches of 8).
 */
export function plannedTrainingTokens(job: { method: string; hyperparameters: Record<string, number> }, lineBytes: number[], generative: { ctx: number } | null = null): number {
  const hp = job.hyperparameters, rows = lineBytes.length;
  if (rows === 0) return 0;
  if (generative !== null) {
    const batch = hp.batch_size ?? 8;
    return (hp.steps ?? Math.max(1, Math.ceil(((hp.n_epochs ?? 3) * rows) / batch))) * batch * generative.ctx;
  }
  if (job.method === "probe" || job.method === "prototype" || job.method === "knn") return 0;
  const perExample = lineBytes.map((b) => Math.min(128, b + 2)).sort((a, b) => b - a);
  if (job.method === "setfit") {
    const { steps, batchPairs } = setfitPlan(rows, { pairs: hp.pairs, batchPairs: hp.batch_pairs });
    return steps * perExample.slice(0, 2 * batchPairs).reduce((s, b) => s + b, 0);
  }
  const batch = Math.min(hp.batch_size ?? 16, rows);
  const steps = hp.steps ?? defaultSteps(rows, { epochs: hp.n_epochs, batchSize: batch });
  return steps * perExample.slice(0, batch).reduce((s, b) => s + b, 0);
}

/** The byte length of each non-empty line of an uploaded file. */
export function lineBytesOf(path: string): number[] {
  const out: number[] = [];
  const data = readFileSync(path);
  let start = 0;
  for (let i = 0; i <= data.length; i++) {
    if (i === data.length || data[i] === 0x0a) {
      if (data.subarray(start, i).toString("utf8").trim() !== "") out.push(i - start);
      start = i + 1;
    }
  }
  return out;
}

/** A base's context length from its config.json (GPT-2's n_positions, BERT's max_position_embeddings). */
function contextOf(dir: string): number {
  try {
    const c = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as { n_positions?: number; max_position_embeddings?: number };
    return c.n_positions ?? c.max_position_embeddings ?? 1024;
  } catch {
    return 1024;
  }
}

/**
 * Reserves a fine-tuning job's planned training tokens against its key's quota (429 if they do
 * not fit). Call it in the transaction that creates the job; the reservation is released when
 * the job reaches a terminal status, and the worker records the tokens it really trained.
 */
export async function reserveJobTokens(registry: Registry, key: ApiKey, job: { id: string; model: string; method: string; hyperparameters: Record<string, number> }, file: Pick<FileEntry, "path" | "labels">): Promise<number> {
  if (key.tokenQuota === null) return 0;
  const base = await registry.catalog.model(job.model);
  const generative = file.labels.length === 0 ? { ctx: base === undefined ? 1024 : contextOf(base.dir) } : null;
  const planned = plannedTrainingTokens(job, lineBytesOf(file.path), generative);
  const res = await registry.keys.reserve(key, { kind: "fine_tuning", model: job.model, min: planned, max: planned, jobId: job.id });
  if (res === null) throw quotaError(key, await registry.keys.quota(key.id), `this fine-tuning job plans up to ${planned} training tokens (its steps × its batch's longest examples)`);
  return planned;
}
