// ONNX exports in their real runtimes: onnxruntime-node runs the GPT decoder (with past
// key/values and padding) and the BERT encoder + MLM head to Plinth's logits within 1e-4;
// the int8 export's perplexity change is measured; transformers.js generates from the
// exported GPT folder the same greedy text as Plinth.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { exportONNX, onnxBytes } from "../src/interop/onnx/export.js";
import { OnnxGPT, plinthPerplexity } from "../src/interop/runtimes.js";
import { readFields } from "../src/interop/onnx/proto.js";
import { generate, type GPT } from "../src/models/gpt/index.js";
import type { BertForMaskedLM } from "../src/models/bert/index.js";
import { ids, noGrad } from "../src/tensor/index.js";
import { mobyText, tinyBert, tinyGPT, tinyTokenizer } from "./helpers/interop.js";

const tok = tinyTokenizer();
const gpt = tinyGPT(tok);
const V = tok.vocabSize;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, "lengths");
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
const plinthLogits = (model: GPT | BertForMaskedLM, rows: number[][]): Float32Array => noGrad(() => model.forward(ids(rows)).logits.toArray() as Float32Array);
const row = (data: Float32Array, r: number): Float32Array => data.subarray(r * V, (r + 1) * V);

test("GPT: onnxruntime logits match Plinth's within 1e-4, whole sequences and step by step with past key/values", async () => {
  const s = await OnnxGPT.create(onnxBytes(gpt), gpt.config, 1);
  const rows = [tok.encode("Call me Ishmael. Some years ago, never mind").slice(0, 12), tok.encode("It was the whale, the white whale, that").slice(0, 12)];
  const want = plinthLogits(gpt, rows);
  const full = await s.run(rows, null);
  const d = maxAbsDiff(full.logits, want);
  assert.ok(d < 1e-4, `max |ort - plinth| = ${d}`);
  assert.ok(want.some((v) => Math.abs(v) > 1), "logits are not all tiny");
  console.log(`onnxruntime GPT logits max-abs-diff ${d.toExponential(2)}`);

  // 5 tokens of prefill, then one token at a time through the cache.
  let step = await s.run(rows.map((r) => r.slice(0, 5)), null);
  for (let t = 5; t < 12; t++) {
    step = await s.run(rows.map((r) => [r[t]]), step.past);
    for (let b = 0; b < 2; b++) {
      const dd = maxAbsDiff(row(step.logits, b), want.subarray((b * 12 + t) * V, (b * 12 + t + 1) * V));
      assert.ok(dd < 1e-4, `step ${t} row ${b}: ${dd}`);
    }
  }
  assert.deepEqual(step.past["past_key_values.0.key"].dims, [2, 4, 12, 16]);
});

test("GPT: a left-padded row gives the unpadded row's logits (attention_mask and position_ids honoured)", async () => {
  const s = await OnnxGPT.create(onnxBytes(gpt), gpt.config, 1);
  const a = tok.encode("There she blows! there she blows!").slice(0, 10), b = a.slice(0, 6);
  const padded = [[...a], [0, 0, 0, 0, ...b]];
  const mask = [a.map(() => 1), [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]];
  const positions = [a.map((_, i) => i), [0, 0, 0, 0, 0, 1, 2, 3, 4, 5]];
  const { logits } = await s.run(padded, null, mask, positions);
  const want = plinthLogits(gpt, [b]);
  const got = logits.subarray((10 + 4) * V, 20 * V);
  assert.ok(maxAbsDiff(got, want) < 1e-4);
  assert.ok(logits.every(Number.isFinite), "fully masked (padding) rows stay finite");
});

test("BERT: onnxruntime logits and hidden states match Plinth's; padding keys are masked", async () => {
  const bert = tinyBert(tok, 30);
  const session = await ort.InferenceSession.create(onnxBytes(bert), { intraOpNumThreads: 1, interOpNumThreads: 1 });
  assert.deepEqual(session.inputNames, ["input_ids", "attention_mask", "token_type_ids"]);
  const rowsIn = [tok.encode("Call me Ishmael. Some years ago").slice(0, 9), tok.encode("the whale [MASK] the sea").slice(0, 9)];
  const T = 9;
  const t64 = (rows: number[][]) => new ort.Tensor("int64", BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]);
  const out = await session.run({ input_ids: t64(rowsIn), attention_mask: t64(rowsIn.map((r) => r.map(() => 1))), token_type_ids: t64(rowsIn.map((r) => r.map(() => 0))) });
  const want = plinthLogits(bert, rowsIn);
  const d = maxAbsDiff(out.logits.data as Float32Array, want);
  assert.ok(d < 1e-4, `max |ort - plinth| = ${d}`);
  const hidden = noGrad(() => bert.hidden(ids(rowsIn)).toArray());
  assert.ok(maxAbsDiff(out.last_hidden_state.data as Float32Array, hidden) < 1e-4);
  console.log(`onnxruntime BERT logits max-abs-diff ${d.toExponential(2)}`);
  // Right padding: the first 5 tokens with 4 pads after them equal the 5 tokens alone.
  const pad = tok.tokenToId("[PAD]")!;
  const short = rowsIn[0].slice(0, 5);
  const o2 = await session.run({ input_ids: t64([[...short, pad, pad, pad, pad]]), attention_mask: t64([[1, 1, 1, 1, 1, 0, 0, 0, 0]]), token_type_ids: t64([Array(T).fill(0)]) });
  assert.ok(maxAbsDiff((o2.logits.data as Float32Array).subarray(0, 5 * V), plinthLogits(bert, [short])) < 1e-4);
});

test("int8 weights: under 40% of the size, and the perplexity change is measured in onnxruntime", async () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-onnx-"));
  try {
    const [fp, q8] = exportONNX(dir, gpt, tok, { int8: true });
    const ratio = statSync(q8).size / statSync(fp).size;
    assert.ok(ratio < 0.4, `int8 file is ${ratio} of float32`);
    const held = tok.encode(mobyText().slice(0, 12_000), { specialTokens: false });
    const pFloat = await (await OnnxGPT.create(fp, gpt.config, 1)).perplexity(held, 63, 6);
    const pInt8 = await (await OnnxGPT.create(q8, gpt.config, 1)).perplexity(held, 63, 6);
    const pPlinth = plinthPerplexity(gpt, held, 63, 6);
    assert.ok(Math.abs(pFloat - pPlinth) / pPlinth < 1e-5, `float ONNX ${pFloat} vs Plinth ${pPlinth}`);
    const change = (pInt8 - pFloat) / pFloat;
    assert.ok(Math.abs(change) < 0.02, `int8 perplexity ${pInt8} vs ${pFloat}`);
    console.log(`perplexity float ${pFloat.toFixed(3)} int8 ${pInt8.toFixed(3)} (${(100 * change).toFixed(3)}%), size ratio ${ratio.toFixed(3)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("transformers.js text-generation on the exported folder gives Plinth's greedy continuation", async () => {
  const root = mkdtempSync(join(tmpdir(), "plinth-tjs-"));
  try {
    exportONNX(join(root, "plinth-gpt"), gpt, tok, { int8: true });
    for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json", "onnx/model.onnx"]) assert.ok(existsSync(join(root, "plinth-gpt", f)), f);
    const { pipeline, env } = await import("@huggingface/transformers");
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = root + "/";
    const prompt = "Call me Ishmael. Some years ago";
    const ours = generate(gpt, tok.encode(prompt, { specialTokens: false }), { maxNewTokens: 24 }).tokens;
    const gen = await pipeline("text-generation", "plinth-gpt", { dtype: "fp32" });
    const [out] = (await gen(prompt, { max_new_tokens: 24, do_sample: false })) as { generated_text: string }[];
    assert.equal(out.generated_text, prompt + tok.decode(ours));
    const genQ8 = await pipeline("text-generation", "plinth-gpt", { dtype: "q8" });
    const [q] = (await genQ8(prompt, { max_new_tokens: 24, do_sample: false })) as { generated_text: string }[];
    assert.ok(q.generated_text.startsWith(prompt) && q.generated_text.length > prompt.length);
    await gen.dispose();
    await genQ8.dispose();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("the ModelProto decodes as ONNX IR 8 / opset 17; a truncated file is refused by the decoder and by onnxruntime", async () => {
  const bytes = onnxBytes(gpt);
  const top = readFields(bytes, "ModelProto");
  const field = (fs: ReturnType<typeof readFields>, n: number) => fs.filter((f) => f.field === n);
  assert.equal(field(top, 1)[0].value, 8n);
  const opset = readFields(field(top, 8)[0].value as Uint8Array, "OperatorSetIdProto");
  assert.equal(field(opset, 2)[0].value, 17n);
  const graph = readFields(field(top, 7)[0].value as Uint8Array, "GraphProto");
  const name = (b: Uint8Array) => new TextDecoder().decode(field(readFields(b), 1)[0].value as Uint8Array);
  assert.deepEqual(field(graph, 11).map((f) => name(f.value as Uint8Array)).slice(0, 4), ["input_ids", "attention_mask", "position_ids", "past_key_values.0.key"]);
  assert.ok(field(graph, 1).length > 50, "nodes");
  const cut = bytes.subarray(0, Math.floor(bytes.length / 2));
  assert.throws(() => readFields(cut, "ModelProto"), /ModelProto: field 7 says \d+ bytes at byte \d+, only \d+ left \(truncated file\?\)/);
  await assert.rejects(ort.InferenceSession.create(cut));
});

test("transformers.js fill-mask on the exported BERT folder gives Plinth's top predictions", async () => {
  const root = mkdtempSync(join(tmpdir(), "plinth-tjs-bert-"));
  try {
    const bert = tinyBert(tok, 30);
    exportONNX(join(root, "plinth-bert"), bert, tok);
    const { pipeline, env } = await import("@huggingface/transformers");
    env.allowRemoteModels = false;
    env.localModelPath = root + "/";
    const text = "Call me Ishmael. Some years [MASK], never mind";
    const idsIn = tok.encode(text);
    const [ours] = bert.fillMask(idsIn, idsIn.indexOf(tok.tokenToId("[MASK]")!), { topK: 3 });
    const fill = await pipeline("fill-mask", "plinth-bert", { dtype: "fp32" });
    const theirs = (await fill(text, { top_k: 3 })) as { token: number; score: number }[];
    assert.deepEqual(theirs.map((t) => t.token), ours.ids);
    theirs.forEach((t, i) => assert.ok(Math.abs(t.score - ours.probs[i]) < 1e-5));
    await fill.dispose();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
