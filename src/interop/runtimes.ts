/**
 * The runtimes Plinth's exports are checked against, behind small helpers: onnxruntime-node
 * for ONNX files and llama.cpp (node-llama-cpp, its prebuilt CPU binary, never a build or a
 * download) for GGUF files. Both packages are optional dependencies, loaded on first use;
 * a missing one gets an error that says which package to install.
 *
 * Each gives greedy continuations and perplexity over a token stream the same way Plinth
 * does (`plinthPerplexity`), so their numbers compare directly.
 */
import { GPT } from "../models/gpt/index.js";
import { ids as idsTensor, noGrad } from "../tensor/index.js";
import { crossEntropy } from "../tensor/ops/nn.js";

// The two packages' types are imported only as types; their code loads lazily.
type Ort = typeof import("onnxruntime-node");
type LlamaCpp = typeof import("node-llama-cpp");

async function load<T>(name: string): Promise<T> {
  try {
    return (await import(name)) as T;
  } catch (e) {
    throw new Error(`${name} is not installed (${(e as Error).message.split("\n")[0]}); install it to run exported models (npm install ${name})`);
  }
}

export const loadOrt = (): Promise<Ort> => load<Ort>("onnxruntime-node");

/** Windows of `ctx` + 1 tokens, non-overlapping: each scores its last ctx tokens. */
function windows(tokens: readonly number[], ctx: number, maxWindows: number): number[][] {
  const out: number[][] = [];
  for (let at = 0; at + ctx + 1 <= tokens.length && out.length < maxWindows; at += ctx) out.push(tokens.slice(at, at + ctx + 1));
  if (out.length === 0) throw new Error(`perplexity: need at least ${ctx + 1} tokens, got ${tokens.length}`);
  return out;
}

export function plinthPerplexity(model: GPT, tokens: readonly number[], ctx: number, maxWindows = 64): number {
  let nll = 0, n = 0;
  for (const w of windows(tokens, ctx, maxWindows)) {
    nll += noGrad(() => crossEntropy(model.forward(idsTensor([w.slice(0, -1)])).logits, idsTensor([w.slice(1)])).item()) * ctx;
    n += ctx;
  }
  return Math.exp(nll / n);
}

/** An onnxruntime session over an exported GPT decoder (onnx/model.onnx). */
export class OnnxGPT {
  private constructor(readonly ort: Ort, readonly session: import("onnxruntime-node").InferenceSession, readonly layers: number, readonly heads: number, readonly headSize: number) {}

  static async create(file: string | Uint8Array, config: { n_layer: number; n_head: number; n_embd: number }, threads = 0): Promise<OnnxGPT> {
    const ort = await loadOrt();
    const opts = threads > 0 ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : {};
    const session = typeof file === "string" ? await ort.InferenceSession.create(file, opts) : await ort.InferenceSession.create(file, opts);
    return new OnnxGPT(ort, session, config.n_layer, config.n_head, config.n_embd / config.n_head);
  }

  private int64(rows: number[][]): import("onnxruntime-node").Tensor {
    return new this.ort.Tensor("int64", BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]);
  }

  /** One decoder call; `past` from the previous call (or none), mask over past + new tokens. */
  async run(tokens: number[][], past: Record<string, import("onnxruntime-node").Tensor> | null, mask?: number[][], positions?: number[][]) {
    const B = tokens.length, S = tokens[0].length;
    const P = past === null ? 0 : past["past_key_values.0.key"].dims[2];
    const feeds: Record<string, import("onnxruntime-node").Tensor> = {
      input_ids: this.int64(tokens),
      attention_mask: this.int64(mask ?? tokens.map(() => Array(P + S).fill(1))),
      position_ids: this.int64(positions ?? tokens.map(() => Array.from({ length: S }, (_, i) => P + i))),
    };
    for (let l = 0; l < this.layers; l++) {
      for (const kv of ["key", "value"]) {
        feeds[`past_key_values.${l}.${kv}`] = past?.[`past_key_values.${l}.${kv}`] ?? new this.ort.Tensor("float32", new Float32Array(0), [B, this.heads, 0, this.headSize]);
      }
    }
    const out = await this.session.run(feeds);
    const next: Record<string, import("onnxruntime-node").Tensor> = {};
    for (let l = 0; l < this.layers; l++) for (const kv of ["key", "value"]) next[`past_key_values.${l}.${kv}`] = out[`present.${l}.${kv}`];
    return { logits: out.logits.data as Float32Array, past: next };
  }

  /** Greedy continuation with the KV cache, as Plinth's generate() does. */
  async greedy(prompt: number[], maxNewTokens: number, onToken?: () => void): Promise<number[]> {
    let { logits, past } = await this.run([prompt], null);
    const V = logits.length / prompt.length;
    const out: number[] = [];
    for (let i = 0; i < maxNewTokens; i++) {
      const row = logits.subarray(logits.length - V);
      let best = 0;
      for (let v = 1; v < V; v++) if (row[v] > row[best]) best = v;
      out.push(best);
      onToken?.();
      if (i === maxNewTokens - 1) break;
      ({ logits, past } = await this.run([[best]], past));
    }
    return out;
  }

  async perplexity(tokens: readonly number[], ctx: number, maxWindows = 64): Promise<number> {
    let nll = 0, n = 0;
    for (const w of windows(tokens, ctx, maxWindows)) {
      const { logits } = await this.run([w.slice(0, -1)], null);
      const V = logits.length / ctx;
      for (let t = 0; t < ctx; t++) {
        const row = logits.subarray(t * V, (t + 1) * V);
        let max = -Infinity;
        for (const v of row) max = Math.max(max, v);
        let sum = 0;
        for (const v of row) sum += Math.exp(v - max);
        nll += Math.log(sum) + max - row[w[t + 1]];
        n++;
      }
    }
    return Math.exp(nll / n);
  }
}

/** llama.cpp through node-llama-cpp, CPU only, from its prebuilt binary. */
export class LlamaGGUF {
  private constructor(readonly llama: import("node-llama-cpp").Llama, readonly model: import("node-llama-cpp").LlamaModel) {}

  static async load(path: string, threads = 0): Promise<LlamaGGUF> {
    const { getLlama, LlamaLogLevel } = await load<LlamaCpp>("node-llama-cpp");
    const llama = await getLlama({ gpu: false, build: "never", usePrebuiltBinaries: true, skipDownload: true, logLevel: LlamaLogLevel.error, ...(threads > 0 ? { maxThreads: threads } : {}) });
    return new LlamaGGUF(llama, await llama.loadModel({ modelPath: path }));
  }

  tokenize(text: string): number[] {
    return Array.from(this.model.tokenize(text));
  }

  private async context(size: number) {
    // F32 keys/values: the default F16 cache rounds what Plinth keeps in float32.
    return this.model.createContext({ contextSize: size, sequences: 1, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" });
  }

  async greedy(prompt: number[], maxNewTokens: number, onToken?: () => void): Promise<number[]> {
    const ctx = await this.context(Math.max(prompt.length + maxNewTokens, 16));
    try {
      const out: number[] = [];
      if (maxNewTokens === 0) return out;
      const tokens = prompt as unknown as import("node-llama-cpp").Token[];
      for await (const t of ctx.getSequence().evaluate(tokens, { temperature: 0 })) {
        out.push(t as unknown as number);
        onToken?.();
        if (out.length >= maxNewTokens) break;
      }
      return out;
    } finally {
      await ctx.dispose();
    }
  }

  async perplexity(tokens: readonly number[], ctx: number, maxWindows = 64): Promise<number> {
    const context = await this.context(ctx + 1);
    let nll = 0, n = 0;
    try {
      for (const w of windows(tokens, ctx, maxWindows)) {
        const seq = context.getSequence();
        const input = w.slice(0, -1).map((t) => [t, { generateNext: { probabilities: true } }] as [import("node-llama-cpp").Token, { generateNext: { probabilities: true } }]);
        const res = await seq.controlledEvaluate(input);
        for (let t = 0; t < ctx; t++) {
          const p = res[t]?.next?.probabilities?.get(w[t + 1] as unknown as import("node-llama-cpp").Token) ?? 0;
          nll += -Math.log(Math.max(p, 1e-30));
          n++;
        }
        await seq.clearHistory();
        seq.dispose();
      }
    } finally {
      await context.dispose();
    }
    return Math.exp(nll / n);
  }

  async dispose(): Promise<void> {
    await this.model.dispose();
    await this.llama.dispose();
  }
}

/**
 * Masked-token top-1 accuracy of an exported BERT (onnx/model.onnx) on a token stream:
 * windows of T tokens, every 7th position (from the 4th) replaced by `maskId`.
 */
export async function onnxMaskedAccuracy(file: string | Uint8Array, tokens: readonly number[], { maskId, T, maxWindows = 32, threads = 1 }: { maskId: number; T: number; maxWindows?: number; threads?: number }): Promise<{ accuracy: number; masked: number }> {
  const ort = await loadOrt();
  const opts = { intraOpNumThreads: threads, interOpNumThreads: 1 };
  const session = typeof file === "string" ? await ort.InferenceSession.create(file, opts) : await ort.InferenceSession.create(file, opts);
  const t64 = (row: number[]) => new ort.Tensor("int64", BigInt64Array.from(row.map(BigInt)), [1, row.length]);
  let right = 0, masked = 0;
  for (let at = 0, w = 0; at + T <= tokens.length && w < maxWindows; at += T, w++) {
    const row = tokens.slice(at, at + T);
    const input = row.map((t, i) => (i % 7 === 3 ? maskId : t));
    const out = await session.run({ input_ids: t64(input), attention_mask: t64(row.map(() => 1)), token_type_ids: t64(row.map(() => 0)) });
    const logits = out.logits.data as Float32Array, V = logits.length / T;
    for (let i = 3; i < T; i += 7) {
      let best = 0;
      for (let v = 1; v < V; v++) if (logits[i * V + v] > logits[i * V + best]) best = v;
      right += best === row[i] ? 1 : 0;
      masked++;
    }
  }
  if (masked === 0) throw new Error(`masked accuracy: need at least ${T} tokens, got ${tokens.length}`);
  return { accuracy: right / masked, masked };
}
