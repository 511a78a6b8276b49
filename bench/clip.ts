/**
 * `npm run bench -- --only clip`: CLIP training throughput (images/s) for the tiny and small
 * presets, beside the same model in PyTorch (scripts/torch_clip_bench.py) run in the same
 * process tree right after, plus the cost of building a batch from the cached emoji set
 * (augmentation + caption encoding) to show data loading is not the bottleneck.
 *
 * One training step = forward of both towers, symmetric InfoNCE, backward, gradient clipping,
 * AdamW, logit_scale clamp, on one fixed random batch (as the torch script does). PyTorch runs
 * with the same thread count and with one thread; on a loaded machine its OpenMP barriers can
 * spin, so the better of the two is the one compared. Rounds alternate plinth and torch.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadavg, tmpdir } from "node:os";
import { CaptionEncoder, trainCaptionTokenizer } from "../src/data/captions.js";
import { renderEmojiDataset } from "../src/data/emoji.js";
import { CLIP_PRESETS, ClipModel, clipConfig } from "../src/models/clip/index.js";
import { AdamW, clipGradNorm } from "../src/optim/index.js";
import { Rng, empty, randn } from "../src/tensor/index.js";
import { pairBatch } from "../src/train/contrastive.js";

type Row = Record<string, string | number | boolean>;
const BATCH = 64, VOCAB = 1024;
const here = dirname(fileURLToPath(import.meta.url));
const script = [join(here, "..", "..", "scripts", "torch_clip_bench.py"), join(process.cwd(), "scripts", "torch_clip_bench.py")].find(existsSync);

function plinthStep(size: string, steps: number): Row {
  const p = CLIP_PRESETS[size];
  const config = clipConfig({ projection_dim: p.projection_dim, text_config: { ...p.text, vocab_size: VOCAB, eos_token_id: 0, pad_token_id: 1 }, vision_config: p.vision });
  const model = new ClipModel(config, { seed: 0 });
  const opt = new AdamW(model.paramGroups(0.1), { lr: 5e-4, betas: [0.9, 0.98], eps: 1e-6 });
  const S = config.vision_config.image_size, T = config.text_config.max_position_embeddings;
  const pixels = randn([BATCH, 3, S, S]);
  const ids = empty([BATCH, T], "int32");
  const rng = new Rng(1);
  for (let b = 0; b < BATCH; b++) {
    for (let t = 0; t < T; t++) ids.ids[b * T + t] = 5 + rng.int(VOCAB - 5);
    ids.ids[b * T + 3 + rng.int(T - 3)] = 0;
  }
  const step = () => {
    const { loss } = model.forward(pixels, ids);
    loss.backward();
    loss.release();
    clipGradNorm(model.parameters(), 1);
    opt.step();
    opt.zeroGrad();
    model.logit_scale.data[0] = Math.min(Math.max(model.logit_scale.data[0], 0), Math.log(100));
  };
  for (let i = 0; i < 2; i++) step();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) step();
  const dt = (performance.now() - t0) / steps / 1000;
  return { impl: "plinth", bench: "clip", config: size, params: model.numParameters(), batch: BATCH, step_ms: Math.round(dt * 10000) / 10, images_per_s: Math.round((BATCH / dt) * 10) / 10 };
}

function torchStep(size: string, steps: number, threads: number): Row | { error: string } {
  if (script === undefined) return { error: "scripts/torch_clip_bench.py was not found" };
  const r = spawnSync("/usr/bin/python3", [script, size, "--steps", String(steps), "--threads", String(threads)], { encoding: "utf8" });
  if (r.status !== 0) return { error: `torch_clip_bench.py failed (is python3-torch installed? apt-get install -y python3-torch): ${r.stderr.trim().split("\n").pop()}` };
  return JSON.parse(r.stdout.trim().split("\n").filter((l) => l.startsWith("{")).pop()!) as Row;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Rows for each preset: plinth and torch (N threads and 1 thread) measured in `rounds`
 * interleaved rounds (medians reported, so load that comes and goes hits both sides alike),
 * the ratio to torch's better setting, and the data pipeline's cost per batch.
 */
export function clipBench({ sizes = ["tiny", "small"], steps = 5, rounds = 3, threads }: { sizes?: string[]; steps?: number; rounds?: number; threads: number }): Row[] {
  const rows: Row[] = [];
  for (const size of sizes) {
    const load = loadavg()[0];
    const ours: Row[] = [], theirs = new Map<number, Row[]>();
    let error: string | null = null;
    for (let r = 0; r < rounds; r++) {
      ours.push(plinthStep(size, steps));
      // torch at N threads once (on a loaded machine it is many times slower than at 1), at 1 thread every round.
      for (const th of threads > 1 && r === 0 ? [threads, 1] : [1]) {
        const t = torchStep(size, steps, th);
        if ("error" in t) error = t.error as string;
        else theirs.set(th, [...(theirs.get(th) ?? []), t]);
      }
    }
    const mine = median(ours.map((r) => Number(r.images_per_s)));
    rows.push({ impl: "plinth", bench: "clip", config: size, params: ours[0].params, batch: BATCH, threads, rounds, images_per_s: mine, step_ms: Math.round((BATCH / mine) * 10000) / 10, all: ours.map((r) => r.images_per_s).join("/"), load_avg: Math.round(load * 10) / 10 });
    if (error !== null) rows.push({ impl: "torch", bench: "clip", config: size, error });
    let best: { th: number; ips: number } | null = null;
    for (const [th, rs] of theirs) {
      const ips = median(rs.map((r) => Number(r.images_per_s)));
      rows.push({ impl: "torch", bench: "clip", config: size, params: rs[0].params, batch: BATCH, threads: th, rounds: rs.length, images_per_s: ips, step_ms: Math.round((BATCH / ips) * 10000) / 10, all: rs.map((r) => r.images_per_s).join("/"), torch: rs[0].torch });
      if (best === null || ips > best.ips) best = { th, ips };
    }
    if (best !== null) rows.push({ impl: "ratio", bench: "clip", config: size, plinth_images_per_s: mine, torch_images_per_s: best.ips, torch_threads: best.th, ratio: `${(mine / best.ips).toFixed(2)}x` });
  }
  // The data side: building one augmented batch of 64 from the cached emoji set.
  const ds = renderEmojiDataset({ size: 32, cacheDir: join(tmpdir(), "plinth-bench-cache") });
  const enc = new CaptionEncoder(trainCaptionTokenizer(ds.items.slice(0, 400).flatMap((it) => it.captions), 512), 24);
  const rng = new Rng(2);
  const picks = () => Array.from({ length: BATCH }, () => ({ index: rng.int(ds.items.length), caption: rng.int(6) }));
  const n = 50, t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const { pixels, ids } = pairBatch(ds, enc, picks(), rng);
    pixels.release();
    ids.release();
  }
  const ms = (performance.now() - t0) / n;
  rows.push({ impl: "plinth", bench: "clip-data", case: "augmented emoji batch of 64 (32px) + captions", batch_ms: Math.round(ms * 100) / 100, images_per_s: Math.round(BATCH / (ms / 1000)) });
  return rows;
}
