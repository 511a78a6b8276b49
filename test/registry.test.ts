// The model registry (src/models/registry.ts): every architecture round-trips through
// saveModel/loadModel in Hugging Face's layout; readModelType names what is wrong with a
// config.json and which types are supported; capabilities agree with the classes `can`
// narrows to; the sizes callers ask for; LoRA's default targets and the generation layers
// are Linear layers of a constructed model.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyLoRA } from "../src/adapt/lora.js";
import { Linear } from "../src/nn/layers.js";
import { Module } from "../src/nn/module.js";
import { BertForMaskedLM, bertConfig, loadBert } from "../src/models/bert/index.js";
import { ClipModel, clipConfig } from "../src/models/clip/index.js";
import { GPT, gptConfig } from "../src/models/gpt/index.js";
import {
  type AnyModel, type Capability, MODEL_TYPES, architecture, architectureOf, can, contextLength, createLike, embedSequences, generationLayers,
  hiddenSize, loadModel, loraTargets, readModelType, saveModel, supportedTypes, supports, typesWith, vocabSize,
} from "../src/models/registry.js";

const withDir = (body: (dir: string) => void) => () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-registry-"));
  try {
    body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};

const models = (): Record<string, AnyModel> => ({
  gpt2: new GPT(gptConfig({ vocab_size: 40, n_embd: 16, n_layer: 2, n_head: 2, n_positions: 12 }), { seed: 1 }),
  bert: new BertForMaskedLM(bertConfig({ vocab_size: 41, hidden_size: 16, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 24, max_position_embeddings: 10 }), { seed: 2 }),
  clip: new ClipModel(clipConfig({
    projection_dim: 8, text_config: { vocab_size: 42, eos_token_id: 1, hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 9 },
    vision_config: { hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, image_size: 8, patch_size: 4 },
  }), { seed: 3 }),
});

/** Every Linear by its dotted path (the walk applyLoRA makes). */
function linears(root: Module): Map<string, Linear> {
  const out = new Map<string, Linear>();
  const visit = (value: unknown, path: string): void => {
    if (value instanceof Linear) out.set(path, value);
    else if (value instanceof Module) for (const [k, child] of Object.entries(value)) visit(child, path === "" ? k : `${path}.${k}`);
    else if (Array.isArray(value)) value.forEach((child, i) => visit(child, `${path}.${i}`));
  };
  visit(root, "");
  return out;
}

test("the registry lists gpt2, bert and clip, each entry owning its own class", () => {
  assert.deepEqual([...MODEL_TYPES], ["gpt2", "bert", "clip"]);
  assert.equal(supportedTypes(), "gpt2 (GPT2LMHeadModel), bert (BertForMaskedLM) and clip (CLIPModel)");
  for (const [type, model] of Object.entries(models())) {
    assert.equal(architectureOf(model).modelType, type);
    assert.equal(architecture(type), architectureOf(model));
    assert.equal(architecture(model), architectureOf(model));
  }
  assert.throws(() => architecture("llama"), /unknown model_type "llama"; supported: gpt2 \(GPT2LMHeadModel\)/);
  assert.throws(() => architectureOf(new Linear(2, 2)), /a Linear is not a registered model/);
});

test("every architecture round-trips through saveModel and loadModel", withDir((dir) => {
  for (const [type, model] of Object.entries(models())) {
    const out = join(dir, type);
    saveModel(out, model, { objective: "test" });
    const cfg = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    assert.equal(cfg.model_type, type);
    assert.deepEqual(cfg.architectures, [architecture(type).hfClasses[0]]);
    assert.equal(readModelType(out), type);
    const loaded = loadModel(out);
    assert.equal(architectureOf(loaded), architectureOf(model));
    assert.deepEqual(loaded.config, model.config);
    const want = new Map(model.namedParameters().map(([n, p]) => [n, Array.from(p.toArray())]));
    const got = loaded.namedParameters();
    assert.equal(got.length, want.size, `${type}: parameter count`);
    for (const [name, p] of got) assert.deepEqual(Array.from(p.toArray()), want.get(name), `${type}: ${name}`);
    // A fresh model of the same architecture: same config, other weights.
    const fresh = createLike(model, 99);
    assert.equal(architectureOf(fresh), architectureOf(model));
    assert.deepEqual(fresh.config, model.config);
    assert.notDeepEqual(Array.from(fresh.parameters()[0].toArray()), Array.from(model.parameters()[0].toArray()));
  }
}));

test("readModelType and loadModel say what is wrong with config.json and which types load", withDir((dir) => {
  const config = (c: unknown): string => {
    writeFileSync(join(dir, "config.json"), typeof c === "string" ? c : JSON.stringify(c));
    return dir;
  };
  assert.throws(() => readModelType(join(dir, "missing")), /^Error: load: .*missing[\\/]config\.json does not exist/);
  assert.throws(() => readModelType(config("{ broken"), "import"), /^Error: import: .*config\.json is not valid JSON .*corrupt or truncated/);
  assert.throws(() => readModelType(config([1, 2])), /config\.json must hold a JSON object, got an array/);
  assert.throws(() => readModelType(config({ model_type: "llama", architectures: ["LlamaForCausalLM"] })),
    /config\.json has model_type "llama" \(architectures \["LlamaForCausalLM"\]\); supported: gpt2 \(GPT2LMHeadModel\), bert \(BertForMaskedLM\) and clip \(CLIPModel\)/);
  assert.throws(() => readModelType(config({ vocab_size: 3 })), /has model_type undefined \(architectures null\); supported: gpt2/);
  assert.throws(() => readModelType(config({ model_type: "gpt2", architectures: ["GPT2ForSequenceClassification"] })),
    /has architectures \["GPT2ForSequenceClassification"\]; for model_type gpt2 Plinth loads GPT2LMHeadModel, GPT2Model/);
  assert.equal(readModelType(config({ model_type: "bert", architectures: ["BertForPreTraining"] })), "bert");
  // The type is read before the weights: a folder without them fails on the weights, after the config.
  assert.throws(() => loadModel(config({ model_type: "gpt2", vocab_size: 8, n_embd: 4, n_layer: 1, n_head: 1, n_positions: 4 })), /^Error: load: .* has no model\.safetensors/);
  mkdirSync(join(dir, "gpt"));
  saveModel(join(dir, "gpt"), models().gpt2);
  assert.throws(() => loadBert(join(dir, "gpt")), /^Error: loadBert: .*config\.json has model_type "gpt2", expected "bert"/);
  const ctx = { op: "import", path: "c.json", huggingFace: true, notes: [] };
  assert.throws(() => architecture("bert").readConfig({ vocab_size: 8 }, ctx), /^Error: import: c\.json: hidden_act is missing, which Hugging Face reads as the erf "gelu"/);
  assert.throws(() => architecture("gpt2").readConfig({ n_embd: 8 }, ctx), /^Error: import: c\.json: vocab_size is missing or not a number/);
}));

test("capabilities: can() agrees with the class it narrows to; supports() and typesWith() read the same table", () => {
  const all = models();
  const classOf: Record<Capability, (m: AnyModel) => boolean> = {
    generate: (m) => m instanceof GPT,
    embed: (m) => m instanceof GPT || m instanceof BertForMaskedLM,
    classify: (m) => m instanceof GPT || m instanceof BertForMaskedLM,
    "fill-mask": (m) => m instanceof BertForMaskedLM,
    "score-images": (m) => m instanceof ClipModel,
  };
  const expected: Record<string, Capability[]> = { gpt2: ["generate", "embed", "classify"], bert: ["embed", "classify", "fill-mask"], clip: ["score-images"] };
  for (const [type, model] of Object.entries(all)) {
    assert.deepEqual([...architecture(type).capabilities], expected[type]);
    for (const cap of Object.keys(classOf) as Capability[]) {
      assert.equal(can(model, cap), expected[type].includes(cap), `${type} ${cap}`);
      assert.equal(supports(type, cap), expected[type].includes(cap));
      // The type guard must never claim a class the model does not have.
      if (can(model, cap)) assert.ok(classOf[cap](model), `${type} can ${cap} but is not the class can() narrows to`);
    }
  }
  assert.equal(supports("llama", "generate"), false);
  assert.deepEqual(typesWith("classify"), ["gpt2", "bert"]);
  assert.deepEqual(typesWith("generate"), ["gpt2"]);
});

test("hidden size, context length and vocab size of each architecture", () => {
  const { gpt2, bert, clip } = models();
  assert.deepEqual([hiddenSize(gpt2), contextLength(gpt2), vocabSize(gpt2)], [16, 12, 40]);
  assert.deepEqual([hiddenSize(bert), contextLength(bert), vocabSize(bert)], [16, 10, 41]);
  assert.deepEqual([hiddenSize(clip), contextLength(clip), vocabSize(clip)], [8, 9, 42]);
  assert.equal(architectureOf(gpt2).shape(gpt2), "2 layers, d=16, 2 heads, context 12");
  assert.equal(architectureOf(bert).shape(bert), "2 layers, d=16, 2 heads, 10 positions");
  assert.equal(architectureOf(clip).shape(clip), "text 1 layers, d=16, 2 heads; vision 1 layers, d=16, 2 heads, 8px images");
  const seqs = [[1, 2, 3], [4, 5], [6, 7, 8]];
  for (const m of [gpt2, bert]) {
    const v = embedSequences(m, seqs);
    assert.deepEqual(v.map((x) => x.length), [16, 16, 16]);
  }
  assert.throws(() => embedSequences(clip, seqs), /embed: a clip model gives no sentence embeddings/);
});

test("LoRA's default targets are Linear layers of each architecture, and applyLoRA takes them", () => {
  for (const [type, model] of Object.entries(models())) {
    const paths = [...linears(model).keys()];
    for (const target of loraTargets(type)) {
      const hits = paths.filter((p) => p === target || p.endsWith(`.${target}`));
      assert.ok(hits.length > 0, `${type}: LoRA target ${target} matches no Linear (${paths.join(", ")})`);
    }
    assert.deepEqual(loraTargets(model), loraTargets(type));
    const handle = applyLoRA(model, { rank: 2, targets: loraTargets(model) });
    assert.ok(handle.layers.length >= loraTargets(type).length);
    handle.remove();
  }
  const { gpt2, bert } = models();
  const layers = generationLayers(gpt2)!;
  const all = linears(gpt2);
  assert.deepEqual([...layers.keys()], [0, 1].flatMap((l) => ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"].map((n) => `transformer.h.${l}.${n}`)));
  for (const [path, lin] of layers) assert.equal(all.get(path), lin, path);
  // The default targets adapt exactly the generation layers, so a trained adapter can be served.
  const handle = applyLoRA(gpt2, { rank: 2, targets: loraTargets(gpt2) });
  assert.deepEqual(handle.layers.map(([p]) => p).sort(), [...layers.keys()].sort());
  handle.remove();
  assert.equal(generationLayers(bert), null);
});
