/**
 * Tokenization on worker threads. Each worker rebuilds the tokenizer from a recipe (its
 * Hugging Face tokenizer.json, or "bytes") and checks that its fingerprint matches; batches go
 * to the least busy worker and their results come back as one typed array per batch. The
 * caller writes results in the order it submitted them, so the shards do not depend on the
 * number of threads or on which worker finished first.
 *
 * A tokenizer without a recipe (a custom TokenizerLike) is run on the calling thread.
 */
import { Worker } from "node:worker_threads";
import { BPETokenizer } from "../tokenizer/index.js";
import { ByteTextTokenizer, BPETextTokenizer } from "./tokenizer.js";
import type { TokenizerLike } from "./prepare.js";
import type { ShardDType } from "./tokens.js";

export type TokenizerRecipe = { kind: "bpe"; json: unknown } | { kind: "bytes" };

export interface WorkerSetup {
  recipe: TokenizerRecipe;
  dtype: ShardDType;
}

export interface EncodeRequest {
  id: number;
  texts: string[];
}

export type EncodeReply = { id: number; ids: Uint16Array | Int32Array; counts: Int32Array } | { id: number; error: string };

export interface Encoded {
  /** The ids of every text, one after another. */
  ids: Uint16Array | Int32Array;
  /** How many ids each text has. */
  counts: Int32Array;
}

export function tokenizerFromRecipe(recipe: TokenizerRecipe): TokenizerLike {
  return recipe.kind === "bpe" ? new BPETextTokenizer(BPETokenizer.fromJSON(recipe.json)) : new ByteTextTokenizer();
}

/** The texts' ids packed into one typed array, and each text's count: what a worker sends back (and the calling thread makes for a tokenizer without a recipe). */
export function encodeTexts(tokenizer: TokenizerLike, texts: string[], dtype: ShardDType): Encoded {
  const parts = texts.map((t) => tokenizer.encode(t));
  const counts = Int32Array.from(parts, (p) => p.length);
  const ids = dtype === "uint16" ? new Uint16Array(counts.reduce((a, b) => a + b, 0)) : new Int32Array(counts.reduce((a, b) => a + b, 0));
  let at = 0;
  for (const p of parts) {
    ids.set(p, at);
    at += p.length;
  }
  return { ids, counts };
}

interface Pending {
  resolve: (e: Encoded) => void;
  reject: (e: Error) => void;
  worker: number;
}

export class TokenizePool {
  private readonly workers: Worker[] = [];
  private readonly busy: number[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private failure: Error | null = null;

  private constructor(private readonly tokenizer: TokenizerLike, private readonly dtype: ShardDType) {}

  /** Threads actually used: 0 means the calling thread. */
  get threads(): number {
    return this.workers.length;
  }

  /** Starts `threads` workers (0, or a tokenizer without a recipe: none, encode on this thread). */
  static async start(tokenizer: TokenizerLike, threads: number, dtype: ShardDType): Promise<TokenizePool> {
    const pool = new TokenizePool(tokenizer, dtype);
    const recipe = tokenizer.recipe?.();
    if (threads < 1 || recipe === undefined) return pool;
    const setup: WorkerSetup = { recipe, dtype };
    const url = new URL("./tokenize_worker.js", import.meta.url);
    const ready: Promise<void>[] = [];
    for (let i = 0; i < threads; i++) {
      // A small young generation: encoding allocates fast, and V8 would otherwise grow it to 16 MB x 3 per thread.
      const w = new Worker(url, { workerData: setup, resourceLimits: { maxYoungGenerationSizeMb: 8 } });
      pool.workers.push(w);
      pool.busy.push(0);
      ready.push(new Promise((resolve, reject) => {
        const onFirst = (msg: { ready?: string }): void => {
          w.off("error", reject);
          if (msg.ready !== tokenizer.fingerprint()) reject(new Error(`prepare: a tokenizer thread rebuilt a different tokenizer (fingerprint ${msg.ready} vs ${tokenizer.fingerprint()})`));
          else {
            w.on("message", (reply: EncodeReply) => pool.onReply(reply));
            resolve();
          }
        };
        w.once("message", onFirst);
        w.once("error", reject);
      }));
      w.on("error", (e) => pool.fail(e));
      w.on("exit", (code) => {
        if (code !== 0) pool.fail(new Error(`prepare: a tokenizer thread exited with code ${code}`));
      });
    }
    try {
      await Promise.all(ready);
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  encode(texts: string[]): Promise<Encoded> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.workers.length === 0) {
      try {
        return Promise.resolve(encodeTexts(this.tokenizer, texts, this.dtype));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    let w = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.busy[i] < this.busy[w]) w = i;
    const id = this.nextId++;
    this.busy[w]++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, worker: w });
      const req: EncodeRequest = { id, texts };
      this.workers[w].postMessage(req);
    });
  }

  async close(): Promise<void> {
    const ws = this.workers.splice(0);
    await Promise.all(ws.map((w) => w.terminate()));
  }

  private onReply(reply: EncodeReply): void {
    const p = this.pending.get(reply.id);
    if (p === undefined) return;
    this.pending.delete(reply.id);
    this.busy[p.worker]--;
    if ("error" in reply) p.reject(new Error(`prepare: tokenizing failed: ${reply.error}`));
    else p.resolve({ ids: reply.ids, counts: reply.counts });
  }

  private fail(e: Error): void {
    if (this.failure !== null) return;
    this.failure = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}
