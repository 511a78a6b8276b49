// Device-aware tensors: the "opaque" test device keeps storage in native blocks JavaScript
// cannot read, so a model that trains there proves nothing above src/tensor/ reads device
// memory directly; its numbers must equal the CPU's (same kernels) and PyTorch's fixture.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GPT, gptConfig, type GPTConfig } from "../src/models/gpt/index.js";
import { BertForMaskedLM, bertConfig, type BertConfig } from "../src/models/bert/index.js";
import { ClipModel, clipConfig, type ClipConfig } from "../src/models/clip/index.js";
import { AdamW, clipGradNorm } from "../src/optim/index.js";
import * as T from "../src/tensor/index.js";
import { cudaAddon } from "../src/native/cuda.js";
import { backend } from "../src/native/index.js";
import { deviceLines } from "../src/cli/info.js";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { closeTo, fixtureGroups, gradsMatch, loadFixture, unpack, type Packed } from "./helpers/fixtures.js";

interface GptFixture {
  config: GPTConfig;
  params: Record<string, Packed>;
  input_ids: number[][];
  targets: number[][];
  logits: Packed;
  loss: number;
  grads: Record<string, Packed>;
  adamw: { lr: number; betas: [number, number]; eps: number; weight_decay: number; decay: string[]; clip: number };
  train_losses: number[];
  grad_norms: number[];
}

const fx = loadFixture<GptFixture>("gpt_tiny.json");

function build(on: string): GPT {
  const model = new GPT(gptConfig({ ...fx.config }));
  model.loadStateDict(Object.fromEntries(Object.entries(fx.params).map(([k, v]) => [k, unpack(v)])));
  return model.to(on);
}

test("tiny GPT-2 on the opaque device: logits, loss and every gradient equal the CPU's and match PyTorch", () => {
  const results = ["cpu", "opaque"].map((on) => {
    const model = build(on);
    for (const p of model.parameters()) assert.equal(p.device.name, on);
    const x = T.ids(fx.input_ids).to(on), y = T.ids(fx.targets).to(on);
    const { logits, loss } = model.forward(x, y);
    assert.equal(logits.device.name, on);
    logits.retain();
    const out = { logits: logits.toArray(), loss: loss!.item(), grads: new Map<string, Float32Array>() };
    loss!.backward();
    for (const [name, p] of model.namedParameters()) {
      assert.equal(p.grad!.device.name, on, `${name}.grad on ${on}`);
      out.grads.set(name, p.grad!.toArray() as Float32Array);
    }
    if (on === "opaque") {
      closeTo(out.logits, unpack(fx.logits).data, 1e-4, 1e-5, "logits");
      assert.ok(Math.abs(out.loss - fx.loss) < 1e-5, `loss ${out.loss} vs ${fx.loss}`);
      gradsMatch(model.namedParameters(), fx.grads);
    }
    return out;
  });
  const [host, dev] = results;
  assert.deepEqual(dev.logits, host.logits, "same kernels, same numbers: logits");
  assert.equal(dev.loss, host.loss);
  for (const [name, g] of host.grads) assert.deepEqual(dev.grads.get(name), g, `gradient of ${name}`);
});

test("tiny GPT-2 trains on the opaque device: 10 clipped AdamW steps match PyTorch, parameters stay on the device", () => {
  const model = build("opaque");
  const opt = new AdamW(fixtureGroups(model.namedParameters(), fx.adamw.decay, fx.adamw.weight_decay),
    { lr: fx.adamw.lr, betas: fx.adamw.betas, eps: fx.adamw.eps });
  const x = T.ids(fx.input_ids).to("opaque"), y = T.ids(fx.targets).to("opaque");
  for (let step = 0; step < 10; step++) {
    opt.zeroGrad();
    const { loss } = model.forward(x, y);
    const value = loss!.item();
    loss!.backward();
    const norm = clipGradNorm(model.parameters(), fx.adamw.clip);
    opt.step();
    assert.ok(Math.abs(value - fx.train_losses[step]) < 2e-5 * Math.max(1, Math.abs(fx.train_losses[step])),
      `step ${step}: loss ${value} vs ${fx.train_losses[step]}`);
    assert.ok(Math.abs(norm - fx.grad_norms[step]) < 1e-4 * fx.grad_norms[step], `step ${step}: grad norm ${norm} vs ${fx.grad_norms[step]}`);
  }
  for (const p of model.parameters()) assert.equal(p.device.name, "opaque");
  // Moments restore from host values onto the device.
  const moments = opt.momentsOf(model.parameters()[0]);
  assert.equal(moments.m.length, model.parameters()[0].size);
  assert.ok(moments.v.some((v) => v > 0));
});

test("an opaque tensor's values cannot be read directly, only copied out", () => {
  const x = T.tensor([[1, 2, 3], [4, 5, 6]]).to("opaque");
  assert.throws(() => x.data, /data: tensor\[2,3\] lives on opaque; read its values with \.toHost\(\)/);
  const i = T.ids([1, 2]).to("opaque");
  assert.throws(() => i.ids, /ids: tensor\[2\] lives on opaque/);
  assert.deepEqual([...x.toHost().data], [1, 2, 3, 4, 5, 6]);
  assert.deepEqual([...T.transpose(x).toArray()], [1, 4, 2, 5, 3, 6], "a strided view copies out in order");
  assert.equal(T.slice(x, 1, 2, 3).toHost().data[0], 3);
  assert.match(x.toString(), /opaque/);
});

test("mixing devices in one op is an error that names each operand and its device", () => {
  const a = T.ones([2, 3]), b = T.ones([3, 4]).to("opaque");
  assert.throws(() => T.matmul(a, b), /matmul: operands are on different devices: a\[2,3\] on cpu, b\[3,4\] on opaque; move them to one device with \.to\(device\)/);
  assert.throws(() => T.add(a, T.ones([2, 3]).to("opaque")), /add: operands are on different devices: a\[2,3\] on cpu, b\[2,3\] on opaque/);
  const w = T.ones([4]).to("opaque"), bias = T.zeros([4]);
  assert.throws(() => T.layerNorm(T.ones([2, 4]).to("opaque"), w, bias), /layerNorm: .*bias\[4\] on cpu/);
  assert.throws(() => T.crossEntropy(T.ones([2, 5]).to("opaque"), T.ids([1, 2])), /crossEntropy: operands are on different devices: logits\[2,5\] on opaque, targets\[2\] on cpu/);
});

test("ops on the opaque device: broadcasting, reductions, views, cat and their gradients equal the CPU's", () => {
  const run = (on: string) => {
    const a = T.tensor([[0.5, -1, 2], [3, 0.25, -2]]).to(on);
    a.requiresGrad = true;
    const a2 = T.to(a, on);
    const b = T.tensor([1.5, -0.5, 2]).to(on);
    const h = T.gelu(T.mul(T.add(a2, b), 0.7));
    const s = T.softmax(T.cat([h, T.slice(h, 0, 1, 2), T.contiguous(T.transpose(T.transpose(h)))], 0));
    const loss = T.mean(T.sum(T.mul(s, s), 1));
    const value = loss.item();
    loss.backward();
    return { value, grad: [...a.grad!.toArray()] };
  };
  const host = run("cpu"), dev = run("opaque");
  assert.equal(dev.value, host.value);
  assert.deepEqual(dev.grad, host.grad);
});

test("a leaf moved with .to() gets its gradient on its own device", () => {
  const w = T.tensor([1, 2, 3]);
  w.requiresGrad = true;
  const loss = T.sum(T.mul(w.to("opaque"), 2));
  loss.backward();
  assert.equal(w.grad!.device.name, "cpu");
  assert.deepEqual([...w.grad!.data], [2, 2, 2]);
});

test("opaque storage is returned deterministically", () => {
  const before = T.memoryStats().deviceBlocks;
  const xs = Array.from({ length: 5 }, () => T.ones([64, 64], "opaque"));
  assert.equal(T.memoryStats().deviceBlocks, before + 5);
  for (const x of xs) x.release();
  assert.equal(T.memoryStats().deviceBlocks, before);
  T.noGrad(() => T.sum(T.mul(T.ones([8, 8], "opaque"), 3)).item());
  assert.equal(T.memoryStats().deviceBlocks, before, "noGrad releases device tensors it created");
});

test("cuda without the addon or a GPU is a clear error; unknown devices are refused", () => {
  const { module, reason } = cudaAddon();
  if (module === null) {
    assert.throws(() => T.device("cuda"), new RegExp(`device cuda:0: ${reason.replace(/[()]/g, ".")}`));
    assert.match(reason, /CUDA backend is not built/);
  } else if (module.deviceCount() === 0) {
    assert.throws(() => T.device("cuda:0"), /device cuda:0: no CUDA GPU is visible/);
  }
  assert.throws(() => T.device("tpu"), /device: unknown device "tpu" \(expected cpu, cuda, cuda:N or opaque\)/);
  assert.throws(() => T.ones([2]).to("gpu"), /unknown device "gpu"/);
});

test("device references are bounds-checked in native code like typed arrays", () => {
  const b = backend.deviceAlloc(16);
  assert.throws(() => backend.fill(5, [b, 0], 1), /fill: x needs 5 elements but has 4/);
  assert.throws(() => backend.fill(1, [b, 5], 1), /fill: x offset 5 is outside the block's 4 elements/);
  assert.throws(() => backend.deviceUpload(b, 8, new Float32Array(3)), /deviceUpload: 12 bytes at offset 8 overrun the block's 16/);
  backend.fill(4, [b, 0], 2.5);
  const out = new Float32Array(4);
  backend.deviceDownload(b, 0, out);
  assert.deepEqual([...out], [2.5, 2.5, 2.5, 2.5]);
  assert.equal(backend.deviceFree(b), true);
  assert.equal(backend.deviceFree(b), false, "a second free is a no-op");
  assert.throws(() => backend.fill(1, [b, 0], 1), /fill: x is a released device block/);
});

test("plinth info's device lines say why there is no GPU; the CUDA build is skipped with one line unless asked for", () => {
  const { module } = cudaAddon();
  if (module === null) assert.deepEqual(deviceLines().map((l) => l.replace(/\(.*\)/, "(...)")), ["cuda: none (...)"]);
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.PLINTH_CUDA;
  delete env.CUDA_HOME;
  delete env.CUDA_PATH;
  const noNvcc = spawnSync(process.execPath, ["scripts/build-cuda.mjs"], { encoding: "utf8", env: { ...env, PATH: "/nonexistent" } });
  assert.equal(noNvcc.status, 0);
  assert.equal(noNvcc.stdout, "plinth: nvcc not found (no CUDA_HOME, no nvcc on PATH): skipping the optional CUDA backend\n");
  const which = spawnSync("sh", ["-c", "command -v nvcc"], { encoding: "utf8" });
  if (which.status === 0) {
    const optIn = spawnSync(process.execPath, ["scripts/build-cuda.mjs"], { encoding: "utf8", env });
    assert.equal(optIn.status, 0);
    assert.match(optIn.stdout, /^plinth: nvcc found \(.*\), but the CUDA backend is opt-in \(its build takes minutes\): PLINTH_CUDA=1 npm install, or npm run build:cuda\n$/);
  }
});

test("plinth pretrain --device opaque trains the same weights as the CPU; bad devices are refused before any work", () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-device-"));
  const run = (...extra: string[]) => spawnSync(process.execPath, ["dist/src/cli/main.js", "pretrain", "--data", "moby-dick", "--size", "tiny",
    "--steps", "4", "--eval-every", "2", "--batch", "4", "--ctx", "32", "--vocab", "300", "--sample-mb", "0.2", ...extra], { encoding: "utf8" });
  try {
    const host = run("--out", join(dir, "cpu"));
    assert.equal(host.status, 0, host.stderr);
    const dev = run("--out", join(dir, "opaque"), "--device", "opaque");
    assert.equal(dev.status, 0, dev.stderr);
    assert.ok(readFileSync(join(dir, "opaque", "model.safetensors")).equals(readFileSync(join(dir, "cpu", "model.safetensors"))),
      "the opaque device runs the CPU's kernels: the trained weights are byte-identical");
    const cuda = run("--out", join(dir, "cuda"), "--device", "cuda");
    if (cudaAddon().module === null) {
      assert.equal(cuda.status, 2);
      assert.match(cuda.stderr, /^plinth pretrain: --device cuda:0: the CUDA backend is not built; on a machine with nvcc run npm run build:cuda/);
    }
    const mlm = run("--out", join(dir, "mlm"), "--device", "opaque", "--objective", "mlm");
    assert.match(mlm.stderr, /--device opaque: only --objective clm trains off the CPU for now/);
    const bad = run("--out", join(dir, "bad"), "--device", "gpu");
    assert.match(bad.stderr, /--device: unknown device "gpu" \(expected cpu, cuda, cuda:N or opaque\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Runs a model's loss and backward on a device; returns the loss and every gradient, copied out. */
function lossAndGrads(model: { namedParameters(): [string, T.Tensor][] }, loss: () => T.Tensor): { loss: number; grads: Map<string, Float32Array> } {
  const l = loss();
  const value = l.item();
  l.backward();
  return { loss: value, grads: new Map(model.namedParameters().map(([n, p]) => [n, p.grad!.toArray() as Float32Array])) };
}

function sameOnBothDevices(name: string, build: (on: string) => { namedParameters(): [string, T.Tensor][] }, loss: (m: never, on: string) => T.Tensor, expected: number): void {
  const [host, dev] = ["cpu", "opaque"].map((on) => {
    const model = build(on);
    return lossAndGrads(model, () => loss(model as never, on));
  });
  assert.ok(Math.abs(dev.loss - expected) < 1e-5, `${name}: loss ${dev.loss} vs PyTorch's ${expected}`);
  assert.equal(dev.loss, host.loss, `${name}: loss`);
  for (const [n, g] of host.grads) assert.deepEqual(dev.grads.get(n), g, `${name}: gradient of ${n}`);
}

test("tiny BERT and CLIP on the opaque device: loss and every gradient equal the CPU's, loss matches PyTorch", () => {
  const bert = loadFixture<{ config: BertConfig; params: Record<string, Packed>; input_ids: number[][]; token_type_ids: number[][]; targets: number[][]; loss: number }>("bert_tiny.json");
  sameOnBothDevices("BERT", (on) => {
    const m = new BertForMaskedLM(bertConfig({ ...bert.config }));
    m.loadStateDict(Object.fromEntries(Object.entries(bert.params).map(([k, v]) => [k, unpack(v)])));
    return m.to(on);
  }, (m: BertForMaskedLM, on) => m.forward(T.ids(bert.input_ids).to(on), T.ids(bert.targets).to(on), T.ids(bert.token_type_ids).to(on)).loss!, bert.loss);
  const clip = loadFixture<{ config: ClipConfig; params: Record<string, Packed>; pixel_values: Packed; input_ids: number[][]; loss: number }>("clip_tiny.json");
  sameOnBothDevices("CLIP", (on) => {
    const m = new ClipModel(clipConfig(clip.config));
    m.loadStateDict(Object.fromEntries(Object.entries(clip.params).map(([k, v]) => [k, unpack(v)])));
    return m.to(on);
  }, (m: ClipModel, on) => {
    const p = unpack(clip.pixel_values);
    return m.forward(T.tensor(p.data, p.shape).to(on), T.ids(clip.input_ids).to(on)).loss;
  }, clip.loss);
});
