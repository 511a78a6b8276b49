// Hugging Face folders: Plinth's exports round-trip (config, weights, tokenizer files,
// generation config); checkpoints with GPT2LMHeadModel / BertForMaskedLM naming written
// by scripts/hf_checkpoints.py (PyTorch) load and give PyTorch's logits; bad folders
// (corrupt files, other architectures, mismatched tokenizer files) get clear errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportHF, importHF } from "../src/interop/hf.js";
import { decodeSafetensors, encodeSafetensors, f32, toFloat32 } from "../src/io/safetensors.js";
import { GPT, gptConfig } from "../src/models/gpt/index.js";
import { BertForMaskedLM } from "../src/models/bert/index.js";
import { ids, noGrad } from "../src/tensor/index.js";
import { closeTo, fixtureDir, unpack } from "./helpers/fixtures.js";
import { tinyBert, tinyGPT, tinyTokenizer } from "./helpers/interop.js";

const tmp = (): string => mkdtempSync(join(tmpdir(), "plinth-hf-"));
const tok = tinyTokenizer();

function logitsOf(model: GPT | BertForMaskedLM, rows: number[][], types?: number[][]): Float32Array {
  return noGrad(() => (model instanceof GPT ? model.forward(ids(rows)).logits : model.forward(ids(rows), undefined, types ? ids(types) : undefined).logits).toArray() as Float32Array);
}

test("GPT export writes the Hugging Face files and imports back to the same logits and tokenizer", () => {
  const dir = tmp();
  try {
    const model = tinyGPT(tok, 20);
    const files = exportHF(dir, model, tok);
    for (const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"]) {
      assert.ok(files.includes(f) && existsSync(join(dir, f)), f);
    }
    const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    assert.deepEqual(cfg.architectures, ["GPT2LMHeadModel"]);
    const eot = tok.tokenToId("<|endoftext|>");
    assert.equal(cfg.eos_token_id, eot);
    assert.equal(JSON.parse(readFileSync(join(dir, "generation_config.json"), "utf8")).eos_token_id, eot);
    assert.equal(JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8")).eos_token, "<|endoftext|>");
    const back = importHF(dir);
    assert.equal(back.kind, "gpt2");
    const rows = [tok.encode("Call me Ishmael."), tok.encode("The whale swam!!")].map((r) => r.slice(0, 5));
    assert.deepEqual(logitsOf(back.model as GPT | BertForMaskedLM, rows), logitsOf(model, rows));
    assert.deepEqual(back.tokenizer!.encode("a whale of a tale"), tok.encode("a whale of a tale"));
    assert.equal(back.generation!.eos_token_id, eot);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("BERT export round-trips with its tokenizer_config special tokens", () => {
  const dir = tmp();
  try {
    const model = tinyBert(tok, 5);
    exportHF(dir, model, tok);
    const tc = JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8"));
    assert.equal(tc.mask_token, "[MASK]");
    assert.deepEqual(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")).architectures, ["BertForMaskedLM"]);
    const back = importHF(dir);
    assert.equal(back.kind, "bert");
    const rows = [[5, 9, 300, 2, 7, 1]];
    assert.deepEqual(logitsOf(back.model as GPT | BertForMaskedLM, rows), logitsOf(model, rows));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

interface Expected { input_ids: number[][]; token_type_ids?: number[][]; logits: { shape: number[]; data: string } }

for (const name of ["gpt2", "bert"]) {
  test(`a PyTorch-written ${name === "gpt2" ? "GPT2LMHeadModel" : "BertForMaskedLM"} checkpoint loads and matches PyTorch's logits`, () => {
    const dir = join(fixtureDir, "hf", name);
    const exp = JSON.parse(readFileSync(join(dir, "expected.json"), "utf8")) as Expected;
    const loaded = importHF(dir);
    assert.equal(loaded.kind, name);
    assert.ok(loaded.notes.some((n) => /dropout/.test(n)), "HF dropout settings are noted, not refused");
    const got = logitsOf(loaded.model as GPT | BertForMaskedLM, exp.input_ids, exp.token_type_ids);
    const want = unpack(exp.logits);
    assert.ok(want.data.some((v) => Math.abs(v) > 0.5), "fixture logits are not all near zero");
    closeTo(got, want.data, 1e-4, 1e-4, `${name} logits`);
  });
}

test("sharded weights (model.safetensors.index.json) load like a single file", () => {
  const dir = tmp();
  try {
    cpSync(join(fixtureDir, "hf", "gpt2"), dir, { recursive: true });
    const { tensors } = decodeSafetensors(readFileSync(join(dir, "model.safetensors")));
    const names = Object.keys(tensors);
    const shards = [names.slice(0, 10), names.slice(10)];
    const weightMap: Record<string, string> = {};
    shards.forEach((keys, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      writeFileSync(join(dir, file), encodeSafetensors(Object.fromEntries(keys.map((k) => [k, tensors[k]]))));
      for (const k of keys) weightMap[k] = file;
    });
    unlinkSync(join(dir, "model.safetensors"));
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    const exp = JSON.parse(readFileSync(join(fixtureDir, "hf", "gpt2", "expected.json"), "utf8")) as Expected;
    closeTo(logitsOf(importHF(dir).model as GPT, exp.input_ids), unpack(exp.logits).data, 1e-4, 1e-4, "sharded gpt2 logits");
    weightMap[names[0]] = "../elsewhere.safetensors";
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ weight_map: weightMap }));
    assert.throws(() => importHF(dir), /names shard "\.\.\/elsewhere\.safetensors"; expected a file name in the same folder/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("bad folders get errors that say what is wrong", () => {
  const dir = tmp();
  const src = join(fixtureDir, "hf", "gpt2");
  const fresh = (): string => {
    rmSync(dir, { recursive: true, force: true });
    cpSync(src, dir, { recursive: true });
    return dir;
  };
  const edit = (f: (c: Record<string, unknown>) => void): void => {
    const c = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    f(c);
    writeFileSync(join(dir, "config.json"), JSON.stringify(c));
  };
  try {
    assert.throws(() => importHF(join(dir, "nope")), /does not exist/);
    fresh();
    writeFileSync(join(dir, "config.json"), '{"model_type": "gpt2", "vocab_');
    assert.throws(() => importHF(dir), /config\.json is not valid JSON.*corrupt or truncated/);
    fresh();
    edit((c) => ((c.model_type = "llama"), (c.architectures = ["LlamaForCausalLM"])));
    assert.throws(() => importHF(dir), /model_type "llama".*LlamaForCausalLM.*supported: gpt2 \(GPT2LMHeadModel\), bert/);
    fresh();
    edit((c) => (c.architectures = ["GPT2ForSequenceClassification"]));
    assert.throws(() => importHF(dir), /architectures \["GPT2ForSequenceClassification"\]/);
    fresh();
    edit((c) => (c.scale_attn_by_inverse_layer_idx = true));
    assert.throws(() => importHF(dir), /scale_attn_by_inverse_layer_idx/);
    fresh();
    const st = readFileSync(join(dir, "model.safetensors"));
    writeFileSync(join(dir, "model.safetensors"), st.subarray(0, st.length - 100));
    assert.throws(() => importHF(dir), /import: .*model\.safetensors/);
    fresh();
    writeFileSync(join(dir, "model.safetensors"), Buffer.from("this is not a safetensors file at all"));
    assert.throws(() => importHF(dir), /model\.safetensors/);
    fresh();
    unlinkSync(join(dir, "model.safetensors"));
    writeFileSync(join(dir, "pytorch_model.bin"), "PK");
    assert.throws(() => importHF(dir), /pytorch_model\.bin \(a Python pickle\)/);
    fresh();
    edit((c) => (c.n_embd = 32));
    assert.throws(() => importHF(dir), /do not fit GPT2LMHeadModel/);
    // An lm_head that is not the tied embedding would compute something else.
    fresh();
    const { tensors } = decodeSafetensors(readFileSync(join(dir, "model.safetensors")));
    const head = toFloat32(tensors["lm_head.weight"]).slice();
    head[0] += 1;
    tensors["lm_head.weight"] = f32(tensors["lm_head.weight"].shape, head);
    writeFileSync(join(dir, "model.safetensors"), encodeSafetensors(tensors));
    assert.throws(() => importHF(dir), /lm_head\.weight differs from transformer\.wte\.weight; only checkpoints with tied/);
    fresh();
    // Tokenizer files that do not belong to the model.
    tok.save(join(dir, "tokenizer.json"));
    assert.throws(() => importHF(dir), /mismatched tokenizer: .*tokenizer\.json has 384 tokens but config\.json says vocab_size 32/);
    writeFileSync(join(dir, "tokenizer.json"), '{"model": {"type": "BPE", "vocab": {');
    assert.throws(() => importHF(dir), /import: .*tokenizer\.json is not valid JSON/);
    rmSync(join(dir, "tokenizer.json"));
    writeFileSync(join(dir, "generation_config.json"), JSON.stringify({ eos_token_id: 50256 }));
    assert.throws(() => importHF(dir), /eos_token_id 50256 is not a token id of this model \(vocab_size 32\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a tokenizer_config naming tokens the tokenizer lacks, and BERT with the erf GELU, are refused", () => {
  const dir = tmp();
  try {
    const model = new GPT(gptConfig({ vocab_size: tok.vocabSize, n_embd: 16, n_layer: 1, n_head: 2, n_positions: 8 }));
    exportHF(dir, model, tok);
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ eos_token: "</s>", bos_token: { content: "<s>" } }));
    assert.throws(() => importHF(dir), /mismatched tokenizer files: .*tokenizer_config\.json names bos_token "<s>", which .*tokenizer\.json does not have/);
    const bertDir = join(dir, "bert");
    cpSync(join(fixtureDir, "hf", "bert"), bertDir, { recursive: true });
    const c = JSON.parse(readFileSync(join(bertDir, "config.json"), "utf8"));
    writeFileSync(join(bertDir, "config.json"), JSON.stringify({ ...c, hidden_act: "gelu" }));
    assert.throws(() => importHF(bertDir), /hidden_act "gelu" is not supported/);
    assert.throws(() => exportHF(join(dir, "x"), model, tinyTokenizer(300)), /the tokenizer has 300 tokens but the model's vocab_size is 384/);
    copyFileSync(join(fixtureDir, "hf", "gpt2", "model.safetensors"), join(dir, "model.safetensors"));
    assert.throws(() => importHF(dir), /import: /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
