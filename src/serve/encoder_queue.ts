/**
 * The encoder work queue: /v1/embeddings, /v1/classifications and /v1/zero-shot run here, never
 * on the event loop in one piece. Each request is a step generator (adapt/steps.ts) that
 * tokenizes in slices and runs forwards of a bounded number of tokens; the queue runs one piece
 * per event-loop turn, so HTTP, streamed writes and the generation scheduler's steps run between
 * pieces.
 *
 * - Pieces are sized to a wall time (`unitMs`, default 20 ms; half that while generation is
 *   busy) from each base's measured cost per token, so a piece costs about the same on a tiny
 *   model and on a large one.
 * - Tenants take turns: round-robin by tenant, so one tenant's 256 × 64 request delays another
 *   tenant's single input by a piece or two per turn. A tenant's own requests take turns too
 *   (each turn goes to the next of its requests), so its small requests are not stuck behind
 *   its own huge ones: every request of every tenant makes progress.
 * - Generation comes first: while the scheduler has sequences, encoder pieces get at most
 *   `generatingShare` of the time (default 20%), so chats keep their latency under encoder load.
 * - A tenant has at most `maxPerTenant` requests queued or running (beyond: 429).
 * - A request whose client goes away (its AbortSignal) is dropped between pieces: the rest of
 *   its work never runs.
 *
 *     const q = new EncoderQueue({ generating: () => host.generating() });
 *     const { value, plan } = await q.run({ tenant, model: "tiny", signal, steps: (p) => embedTextsSteps(m, tok, texts, {}, p) });
 */
import type { PieceDone, PieceOptions, PiecePlan, Steps } from "../adapt/steps.js";
import { ApiError } from "./errors.js";

export interface EncoderQueueOptions {
  /** Target wall time of one piece, in ms (default 20). */
  unitMs?: number;
  /** Share of the event loop encoder pieces may take while generation is busy (default 0.2). */
  generatingShare?: number;
  /** Requests one tenant may have queued or running at once (default 8). */
  maxPerTenant?: number;
  /** Whether the generation scheduler has sequences running or waiting. */
  generating?: () => boolean;
}

/** The queue's defaults (`plinth serve --encoder-piece-ms`, `--encoder-share`, `--encoder-per-tenant`). */
export const DEFAULT_ENCODER_QUEUE = { unitMs: 20, generatingShare: 0.2, maxPerTenant: 8 } as const;

export interface EncoderTask<R> {
  tenant: string;
  /** The base model: pieces are sized from its measured cost per token. */
  model: string;
  /** The work, given the piece options to use (pieceTokens is read before each forward). */
  steps: (pieces: PieceOptions) => Steps<R>;
  /** Aborting drops the request between pieces; run() then rejects with EncoderAbortError. */
  signal?: AbortSignal;
  /**
   * Sees the plan before any forward runs; what it throws (or its promise rejects with) rejects
   * the request (a limit's 400, a quota's 429). The request's next piece waits for its promise;
   * other requests' pieces run meanwhile.
   */
  admit?: (plan: PiecePlan) => void | Promise<void>;
}

export interface EncoderOutcome<R> {
  value: R;
  plan: PiecePlan | null;
  pieces: number;
  /** Wall time of this request's pieces (not of the time it waited). */
  computeSeconds: number;
}

export interface EncoderQueueStats {
  /** Requests queued or running, and the tenants they belong to. */
  requests: number;
  tenants: number;
  /** Pieces run since start; requests dropped because their client went away. */
  pieces: number;
  dropped: number;
  /** Turns (one or more pieces of one request, ending with a forward): how long each held the event loop, in ms (p99 of the last 1,024). */
  turns: number;
  meanTurnMs: number;
  p99TurnMs: number;
  maxTurnMs: number;
  /** The current forward budget per base, in tokens. */
  pieceTokens: Record<string, number>;
}

export class EncoderAbortError extends Error {
  constructor(message = "the client went away; the request's remaining work was dropped") {
    super(message);
    this.name = "AbortError";
  }
}

interface Entry {
  tenant: string;
  model: string;
  it: Steps<unknown> | null;
  make: () => Steps<unknown>;
  admit?: (plan: PiecePlan) => void | Promise<void>;
  /** An admission in progress (the registry answering): the entry sits out turns until it settles. */
  admitting: Promise<void> | null;
  plan: PiecePlan | null;
  pieces: number;
  ms: number;
  resolve: (o: EncoderOutcome<unknown>) => void;
  reject: (e: unknown) => void;
  cleanup: () => void;
}

const MIN_PIECE_TOKENS = 16;
const MAX_PIECE_TOKENS = 65_536;
/** Budget for a base not measured yet: small, so the first piece cannot stall the loop. */
const FIRST_PIECE_TOKENS = 128;
/** Characters tokenized in one piece (about 5 ms of byte-level BPE here). */
const PIECE_CHARS = 16_384;

export class EncoderQueue {
  readonly unitMs: number;
  readonly generatingShare: number;
  readonly maxPerTenant: number;
  private readonly generating: () => boolean;
  /** Tenants with work, in turn order; `turnAt` is whose turn is next. */
  private readonly order: string[] = [];
  private turnAt = 0;
  private readonly byTenant = new Map<string, Entry[]>();
  /** Measured ms per forward token, per base (an exponential moving average). */
  private readonly msPerToken = new Map<string, number>();
  private scheduled: NodeJS.Immediate | NodeJS.Timeout | null = null;
  private resumeAt = 0;
  private closed = false;
  private piecesRun = 0;
  private turns = 0;
  private turnsMs = 0;
  private maxTurnMs = 0;
  /** The last turns' times, for a percentile. */
  private readonly recentTurns = new Float64Array(1024).fill(NaN);
  private dropped = 0;

  constructor({ unitMs = DEFAULT_ENCODER_QUEUE.unitMs, generatingShare = DEFAULT_ENCODER_QUEUE.generatingShare, maxPerTenant = DEFAULT_ENCODER_QUEUE.maxPerTenant, generating = () => false }: EncoderQueueOptions = {}) {
    if (!(unitMs > 0)) throw new RangeError(`EncoderQueue: unitMs must be > 0, got ${unitMs}`);
    if (!(generatingShare > 0 && generatingShare <= 1)) throw new RangeError(`EncoderQueue: generatingShare must be in (0, 1], got ${generatingShare}`);
    if (!(Number.isInteger(maxPerTenant) && maxPerTenant >= 1)) throw new RangeError(`EncoderQueue: maxPerTenant must be a positive integer, got ${maxPerTenant}`);
    this.unitMs = unitMs;
    this.generatingShare = generatingShare;
    this.maxPerTenant = maxPerTenant;
    this.generating = generating;
  }

  /** The wall time a turn aims at now: `unitMs`, or half of it while chats are being generated. */
  private targetMs(): number {
    return this.generating() ? this.unitMs / 2 : this.unitMs;
  }

  /** Tokens one forward piece of this base may read now. */
  pieceTokens(model: string): number {
    const ms = this.msPerToken.get(model);
    if (ms === undefined) return FIRST_PIECE_TOKENS;
    return Math.round(Math.min(MAX_PIECE_TOKENS, Math.max(MIN_PIECE_TOKENS, this.targetMs() / ms)));
  }

  stats(): EncoderQueueStats {
    let requests = 0;
    for (const l of this.byTenant.values()) requests += l.length;
    const recent = Array.from(this.recentTurns).filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
    return {
      requests, tenants: this.order.length, pieces: this.piecesRun, dropped: this.dropped, turns: this.turns,
      meanTurnMs: this.turns === 0 ? 0 : this.turnsMs / this.turns, p99TurnMs: recent.length === 0 ? 0 : recent[Math.min(recent.length - 1, Math.floor(0.99 * recent.length))],
      maxTurnMs: this.maxTurnMs,
      pieceTokens: Object.fromEntries([...this.msPerToken.keys()].map((m) => [m, this.pieceTokens(m)])),
    };
  }

  /** Queues the work; resolves with its value once its last piece ran. */
  run<R>(task: EncoderTask<R>): Promise<EncoderOutcome<R>> {
    if (this.closed) return Promise.reject(new Error("encoder queue: closed"));
    if (task.signal?.aborted) return Promise.reject(new EncoderAbortError());
    const list = this.byTenant.get(task.tenant) ?? [];
    if (list.length >= this.maxPerTenant) {
      return Promise.reject(new ApiError("rate_limit_exceeded",
        `Too many encoder requests in flight for this tenant: at most ${this.maxPerTenant} at once (embeddings, classifications and zero-shot together). Wait for one to finish.`,
        null, { "retry-after": "1" }));
    }
    return new Promise<EncoderOutcome<R>>((resolve, reject) => {
      const pieces: PieceOptions = { pieceTokens: () => this.pieceTokens(task.model), pieceChars: PIECE_CHARS };
      const entry: Entry = {
        tenant: task.tenant, model: task.model, it: null, make: () => task.steps(pieces) as Steps<unknown>, admit: task.admit, admitting: null,
        plan: null, pieces: 0, ms: 0, resolve: resolve as Entry["resolve"], reject, cleanup: () => {},
      };
      if (task.signal !== undefined) {
        const signal = task.signal;
        const onAbort = () => this.drop(entry);
        signal.addEventListener("abort", onAbort, { once: true });
        entry.cleanup = () => signal.removeEventListener("abort", onAbort);
      }
      if (list.length === 0) {
        this.byTenant.set(task.tenant, list);
        // A tenant that had no work waiting is served next: its first piece runs within one piece of now.
        if (this.turnAt >= this.order.length) this.turnAt = 0;
        this.order.splice(this.turnAt, 0, task.tenant);
      }
      list.push(entry);
      this.kick();
    });
  }

  /** Rejects every queued request and stops. */
  close(): void {
    this.closed = true;
    for (const list of this.byTenant.values()) for (const e of [...list]) this.finish(e, new Error("encoder queue: the server is closing"));
    if (this.scheduled !== null) {
      clearTimeout(this.scheduled as NodeJS.Timeout);
      clearImmediate(this.scheduled as NodeJS.Immediate);
    }
  }

  private kick(delayMs = 0): void {
    if (this.scheduled !== null || this.order.length === 0 || this.closed) return;
    this.scheduled = delayMs <= 0 ? setImmediate(() => this.turn()) : setTimeout(() => this.turn(), delayMs);
  }

  private turn(): void {
    this.scheduled = null;
    if (this.order.length === 0 || this.closed) return;
    const wait = this.resumeAt - performance.now();
    if (wait > 0 && this.generating()) return this.kick(Math.max(1, wait));
    // The next tenant in turn with a request not waiting for its admission, and that request.
    let entry: Entry | undefined;
    let list: Entry[] = [];
    for (let k = 0; k < this.order.length && entry === undefined; k++) {
      if (this.turnAt >= this.order.length) this.turnAt = 0;
      list = this.byTenant.get(this.order[this.turnAt])!;
      this.turnAt++;  // the next tenant's turn, whatever this piece does
      entry = list.find((e) => e.admitting === null);
    }
    if (entry === undefined) return;  // every one waits on the registry: its answer kicks the queue
    const t0 = performance.now();
    const target = this.targetMs();
    let s0 = t0, stepping = false;
    try {
      entry.it ??= entry.make();
      for (;;) {
        s0 = performance.now();
        stepping = true;
        const r = entry.it.next();
        stepping = false;
        this.account(entry, performance.now() - s0, r.done ? null : r.value);
        if (r.done) {
          this.finish(entry, null, { value: r.value, plan: entry.plan, pieces: entry.pieces, computeSeconds: entry.ms / 1000 });
          break;
        }
        if (r.value.kind === "plan") {
          entry.plan = r.value;
          const admitted = entry.admit?.(r.value);
          if (admitted instanceof Promise) {
            const e = entry;
            e.admitting = admitted;
            admitted.then(() => { e.admitting = null; }, (err: unknown) => { e.admitting = null; this.finish(e, err); }).finally(() => this.kick());
            break;
          }
        }
        // A turn is about one forward; cheap steps (the plan, a short slice of tokenizing, a
        // small forward) do not end it, so a small request is served in one turn.
        const spent = performance.now() - t0;
        if (spent >= target / 2 || (r.value.kind === "forward" && spent >= target / 4)) break;
      }
    } catch (e) {
      if (stepping) this.account(entry, performance.now() - s0, null);  // the piece that threw
      this.finish(entry, e);
    }
    // The tenant's next turn goes to its next request: this one, unfinished, goes to the back of its line.
    const at = list.indexOf(entry);
    if (at >= 0 && list.length > 1) list.push(...list.splice(at, 1));
    const ms = performance.now() - t0;
    this.turns++;
    this.turnsMs += ms;
    this.maxTurnMs = Math.max(this.maxTurnMs, ms);
    this.recentTurns[this.turns % this.recentTurns.length] = ms;
    // While generation runs, the next piece waits so that pieces take at most their share of the time.
    this.resumeAt = performance.now() + (ms * (1 - this.generatingShare)) / this.generatingShare;
    this.kick();
  }

  private account(entry: Entry, ms: number, piece: PiecePlan | PieceDone | null): void {
    entry.pieces++;
    entry.ms += ms;
    this.piecesRun++;
    if (piece?.kind === "forward" && piece.tokens > 0) {
      const per = ms / piece.tokens;
      const old = this.msPerToken.get(entry.model);
      this.msPerToken.set(entry.model, old === undefined ? per : 0.7 * old + 0.3 * per);
    }
  }

  /** The client went away: the rest of the request's work is dropped. */
  private drop(entry: Entry): void {
    if (this.finish(entry, new EncoderAbortError())) this.dropped++;
  }

  /** Removes the request from its tenant's line and settles it; false if it was settled already. */
  private finish(entry: Entry, error: unknown, outcome?: EncoderOutcome<unknown>): boolean {
    const list = this.byTenant.get(entry.tenant);
    const at = list?.indexOf(entry) ?? -1;
    if (at < 0) return false;
    list!.splice(at, 1);
    if (list!.length === 0) {
      this.byTenant.delete(entry.tenant);
      const t = this.order.indexOf(entry.tenant);
      this.order.splice(t, 1);
      if (t < this.turnAt) this.turnAt--;
    }
    entry.cleanup();
    try {
      entry.it?.return(undefined);  // runs the generator's finally blocks, if any
    } catch {
      // a generator that throws while closing has nothing more to give
    }
    if (error !== null) entry.reject(error);
    else entry.resolve(outcome!);
    return true;
  }
}
