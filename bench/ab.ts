/**
 * `npm run bench:ab -- --against <checkout>`: this build beside another build of Plinth (e.g. a
 * `git worktree` of the previous commit with its own build), side by side in one process. Both
 * builds' modules (and native addons) are loaded, and each case alternates between them at the
 * granularity of one iteration (this, that, that, this, ...), so load from other work on a shared
 * machine falls on both alike; the ratio reported is the median of the per-pair ratios, with
 * their interquartile range.
 *
 *   train    one AdamW training step of GPT configs S and M (tokens/s)
 *   decode   greedy generation with the KV cache, 32-token prompt + 32 new tokens (tokens/s)
 *   packed   the server's packed step: 8 sequences decoding together, 16 steps (tokens/s)
 *
 *     git worktree add /tmp/before HEAD~1 && (cd /tmp/before && npm ci && npm run build)
 *     npm run bench:ab -- --against /tmp/before --pairs 20
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const CONFIGS: Record<string, { vocab: number; d: number; layers: number; heads: number; ctx: number; batch: number }> = {
  S: { vocab: 4096, d: 256, layers: 4, heads: 4, ctx: 128, batch: 16 },
  M: { vocab: 8192, d: 512, layers: 8, heads: 8, ctx: 256, batch: 8 },
};

const { values } = parseArgs({
  options: {
    against: { type: "string" }, configs: { type: "string" }, pairs: { type: "string" }, help: { type: "boolean", short: "h" },
  },
});
const usage = "npm run bench:ab -- --against <checkout with dist/> [--configs S,M] [--pairs 20]";
const configs = (values.configs ?? "S,M").split(",");
const pairs = Number(values.pairs ?? 20);
for (const c of configs) if (!(c in CONFIGS)) fail(`--configs: unknown config ${c} (S, M)`);
if (!Number.isInteger(pairs) || pairs < 1) fail(`--pairs ${values.pairs}: expected a positive integer`);

function fail(message: string): never {
  console.error(`bench:ab: ${message}\nusage: ${usage}`);
  process.exit(2);
}

const here = dirname(fileURLToPath(import.meta.url));
const self = resolve(here, "..", "..");  // the checkout this file was compiled in (dist/bench/ab.js)

interface Case {
  name: string;
  /** Work units (tokens) per call. */
  units: number;
  run: () => void;
  done: () => void;
}

/** The cases of one build: imports `root`'s compiled modules (and so its native addon). */
async function cases(root: string): Promise<Case[]> {
  const mod = async <T>(p: string): Promise<T> => (await import(pathToFileURL(join(root, "dist", "src", p)).href)) as T;
  const gpt = await mod<typeof import("../src/models/gpt/index.js")>("models/gpt/index.js");
  const optim = await mod<typeof import("../src/optim/index.js")>("optim/index.js");
  const tensor = await mod<typeof import("../src/tensor/index.js")>("tensor/index.js");
  const packed = await mod<typeof import("../src/serve/packed.js")>("serve/packed.js");
  const out: Case[] = [];
  for (const name of configs) {
    const c = CONFIGS[name];
    const config = gpt.gptConfig({ vocab_size: c.vocab, n_embd: c.d, n_layer: c.layers, n_head: c.heads, n_positions: c.ctx });
    const model = new gpt.GPT(config);
    const opt = new optim.AdamW(model.paramGroups(0.1), { lr: 3e-4 });
    const rng = new tensor.Rng(0);
    const batch = () => tensor.ids(Array.from({ length: c.batch }, () => Array.from({ length: c.ctx }, () => rng.int(c.vocab))));
    const x = batch(), y = batch();
    out.push({
      name: `train ${name}`, units: c.batch * c.ctx,
      run: () => {
        const o = model.forward(x, y);
        o.loss!.backward();
        optim.clipGradNorm(model.parameters(), 1);
        opt.step();
        opt.zeroGrad();
        o.loss!.release();
      },
      done: () => (x.release(), y.release()),
    });
    const inference = new gpt.GPT(config).eval();
    const prompt = Array.from({ length: 32 }, () => rng.int(c.vocab));
    out.push({ name: `decode ${name}`, units: 64, run: () => void gpt.generate(inference, prompt, { maxNewTokens: 32 }), done: () => {} });
    out.push({
      name: `packed ${name}`, units: 8 * 16,
      run: () => {
        const caches = Array.from({ length: 8 }, () => new gpt.KVCache(c.layers, c.ctx, c.d));
        let rows = caches.map((cache, i) => ({ tokens: prompt.slice(0, 8 + i), cache, adapter: null }));
        for (let s = 0; s < 16; s++) {
          const logits = packed.forwardPacked(inference, rows);
          rows = rows.map((r, i) => ({ ...r, tokens: [logits[i].indexOf(Math.max(...logits[i]))] }));
        }
        for (const cache of caches) cache.release();
      },
      done: () => {},
    });
  }
  return out;
}

const quantile = (v: number[], q: number): number => {
  const s = [...v].sort((a, b) => a - b);
  const i = (s.length - 1) * q, lo = Math.floor(i), hi = Math.ceil(i);
  return s[lo] + (s[hi] - s[lo]) * (i - lo);
};

function seconds(fn: () => void): number {
  const t = performance.now();
  fn();
  return (performance.now() - t) / 1000;
}

if (values.help) {
  console.log(usage);
  process.exit(0);
}
if (values.against === undefined) fail("--against is required");
const other = resolve(values.against);
if (!existsSync(join(other, "dist", "src", "models", "gpt", "index.js"))) fail(`${other} has no dist/src/models/gpt/index.js: build it first (npm ci && npm run build there)`);
const mine = await cases(self), theirs = await cases(other);
console.log(`bench:ab · this build (${self}) beside ${other} · ${pairs} alternating pairs per case`);
console.log(`\n  ${"case".padEnd(10)} ${"this tok/s".padStart(11)} ${"other tok/s".padStart(12)} ${"ratio".padStart(6)}  per-pair ratio IQR`);
for (let k = 0; k < mine.length; k++) {
  const a = mine[k], b = theirs[k];
  a.run();
  b.run();
  const ta: number[] = [], tb: number[] = [];
  for (let i = 0; i < pairs; i++) {
    if (i % 2 === 0) {
      ta.push(seconds(a.run));
      tb.push(seconds(b.run));
    } else {
      tb.push(seconds(b.run));
      ta.push(seconds(a.run));
    }
  }
  a.done();
  b.done();
  const ratios = ta.map((t, i) => tb[i] / t);  // throughput ratio: this / other
  const rate = (t: number[]) => Math.round(a.units / quantile(t, 0.5));
  console.log(`  ${a.name.padEnd(10)} ${String(rate(ta)).padStart(11)} ${String(rate(tb)).padStart(12)} ${quantile(ratios, 0.5).toFixed(3).padStart(6)}  ${quantile(ratios, 0.25).toFixed(3)}-${quantile(ratios, 0.75).toFixed(3)}`);
}
