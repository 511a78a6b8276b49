/**
 * `npm run bench:ab -- --against <checkout>`: this build beside another build of Plinth (e.g. a
 * `git worktree` of the previous commit with its own `npm run build`), side by side in one run.
 * Each round runs one child process per build, in alternating order (this, that, that, this,
 * ...), so both builds see the same load from other work on the machine; each side reports its
 * median over rounds and the ratio comes with the range of the rounds' own ratios.
 *
 *   train    one AdamW training step of GPT configs S and M (tokens/s)
 *   decode   greedy generation with the KV cache, 32-token prompt + 96 new tokens (tokens/s)
 *   packed   the server's packed step: 8 sequences decoding together, 32 steps (tokens/s)
 *
 *     git worktree add /tmp/before HEAD~1 && (cd /tmp/before && npm ci && npm run build)
 *     npm run bench:ab -- --against /tmp/before --rounds 5
 */
import { spawnSync } from "node:child_process";
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
    against: { type: "string" }, side: { type: "string" }, configs: { type: "string" }, rounds: { type: "string" },
    steps: { type: "string" }, help: { type: "boolean", short: "h" },
  },
});
const usage = "npm run bench:ab -- --against <checkout with dist/> [--configs S,M] [--rounds 5] [--steps 6]";
const configs = (values.configs ?? "S,M").split(",");
const rounds = Number(values.rounds ?? 5), steps = Number(values.steps ?? 6);
for (const c of configs) if (!(c in CONFIGS)) fail(`--configs: unknown config ${c} (S, M)`);
if (!Number.isInteger(rounds) || rounds < 1) fail(`--rounds ${values.rounds}: expected a positive integer`);
if (!Number.isInteger(steps) || steps < 1) fail(`--steps ${values.steps}: expected a positive integer`);

function fail(message: string): never {
  console.error(`bench:ab: ${message}\nusage: ${usage}`);
  process.exit(2);
}

const here = dirname(fileURLToPath(import.meta.url));
const self = resolve(here, "..", "..");  // the checkout this file was compiled in (dist/bench/ab.js)

type Result = Record<string, number>;

/** Runs in a child process: imports `root`'s compiled modules and measures them. */
async function side(root: string): Promise<Result> {
  const mod = async <T>(p: string): Promise<T> => (await import(pathToFileURL(join(root, "dist", "src", p)).href)) as T;
  type Gpt = typeof import("../src/models/gpt/index.js");
  const gpt = await mod<Gpt>("models/gpt/index.js");
  const optim = await mod<typeof import("../src/optim/index.js")>("optim/index.js");
  const tensor = await mod<typeof import("../src/tensor/index.js")>("tensor/index.js");
  const packed = await mod<typeof import("../src/serve/packed.js")>("serve/packed.js");
  const out: Result = {};
  const time = (fn: () => void, iters: number): number => {
    fn();
    const t = performance.now();
    for (let i = 0; i < iters; i++) fn();
    return (performance.now() - t) / iters / 1000;
  };
  for (const name of configs) {
    const c = CONFIGS[name];
    const model = new gpt.GPT(gpt.gptConfig({ vocab_size: c.vocab, n_embd: c.d, n_layer: c.layers, n_head: c.heads, n_positions: c.ctx }));
    const opt = new optim.AdamW(model.paramGroups(0.1), { lr: 3e-4 });
    const rng = new tensor.Rng(0);
    const batch = () => tensor.ids(Array.from({ length: c.batch }, () => Array.from({ length: c.ctx }, () => rng.int(c.vocab))));
    const x = batch(), y = batch();
    const step = () => {
      const o = model.forward(x, y);
      o.loss!.backward();
      optim.clipGradNorm(model.parameters(), 1);
      opt.step();
      opt.zeroGrad();
      o.loss!.release();
    };
    out[`train ${name}`] = (c.batch * c.ctx) / time(step, steps);
    model.eval();
    const prompt = Array.from({ length: 32 }, () => rng.int(c.vocab));
    const gen = () => gpt.generate(model, prompt, { maxNewTokens: 96 });
    out[`decode ${name}`] = (32 + 96) / time(gen, 2);
    const packedStep = () => {
      const caches = Array.from({ length: 8 }, () => new gpt.KVCache(c.layers, c.ctx, c.d));
      let rows = caches.map((cache, i) => ({ tokens: prompt.slice(0, 8 + i), cache, adapter: null }));
      for (let s = 0; s < 32; s++) {
        const logits = packed.forwardPacked(model, rows);
        rows = rows.map((r, i) => ({ ...r, tokens: [logits[i].indexOf(Math.max(...logits[i]))] }));
      }
      for (const cache of caches) cache.release();
    };
    out[`packed ${name}`] = (8 * 32) / time(packedStep, 2);
  }
  return out;
}

const median = (v: number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

if (values.side !== undefined) {
  console.log(JSON.stringify(await side(values.side)));
} else {
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  if (values.against === undefined) fail("--against is required");
  const other = resolve(values.against);
  if (!existsSync(join(other, "dist", "src", "models", "gpt", "index.js"))) fail(`${other} has no dist/src/models/gpt/index.js: build it first (npm ci && npm run build there)`);
  const script = fileURLToPath(import.meta.url);
  const run = (root: string): Result => {
    const r = spawnSync(process.execPath, [script, "--side", root, "--configs", configs.join(","), "--steps", String(steps)], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`bench:ab: the side ${root} failed:\n${r.stderr}`);
    return JSON.parse(r.stdout.trim().split("\n").pop()!) as Result;
  };
  const mine: Result[] = [], theirs: Result[] = [];
  console.log(`bench:ab · this build (${self}) beside ${other} · ${rounds} rounds, alternating order`);
  for (let r = 0; r < rounds; r++) {
    if (r % 2 === 0) {
      mine.push(run(self));
      theirs.push(run(other));
    } else {
      theirs.push(run(other));
      mine.push(run(self));
    }
    process.stdout.write(`  round ${r + 1}/${rounds} done\n`);
  }
  console.log(`\n  ${"case".padEnd(10)} ${"this tok/s".padStart(11)} ${"other tok/s".padStart(12)} ${"ratio".padStart(6)}  rounds' ratios`);
  for (const key of Object.keys(mine[0])) {
    const a = mine.map((m) => m[key]), b = theirs.map((t) => t[key]);
    const each = a.map((v, i) => v / b[i]);
    console.log(`  ${key.padEnd(10)} ${Math.round(median(a)).toString().padStart(11)} ${Math.round(median(b)).toString().padStart(12)} ${(median(a) / median(b)).toFixed(3).padStart(6)}  ${Math.min(...each).toFixed(3)}-${Math.max(...each).toFixed(3)}`);
  }
}
