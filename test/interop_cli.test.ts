// The plinth export / import commands end to end on a saved model: each format's files,
// the int8 perplexity report, and clear failures (exit code, message) for bad input.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync, readFileSync, cpSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { saveGPT } from "../src/models/gpt/index.js";
import { saveBert } from "../src/models/bert/index.js";
import { fixtureDir } from "./helpers/fixtures.js";
import { tinyBert, tinyGPT, tinyTokenizer } from "./helpers/interop.js";

const main = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "cli", "main.js");
const plinth = (...args: string[]) => spawnSync(process.execPath, [main, ...args], { encoding: "utf8" });
const dir = mkdtempSync(join(tmpdir(), "plinth-cli-interop-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const tok = tinyTokenizer();
const run = join(dir, "run");
saveGPT(run, tinyGPT(tok, 100));
tok.save(join(run, "tokenizer.json"));

test("plinth export writes hf, onnx (with int8) and gguf (Q8_0), reporting the perplexity change", () => {
  const hf = plinth("export", "--model", run, "--format", "hf", "--out", join(dir, "hf"));
  assert.equal(hf.status, 0, hf.stderr);
  for (const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"]) assert.ok(existsSync(join(dir, "hf", f)), f);
  const onnx = plinth("export", "--model", run, "--format", "onnx", "--out", join(dir, "onnx"), "--quantize", "int8");
  assert.equal(onnx.status, 0, onnx.stderr);
  assert.match(onnx.stdout, /onnxruntime perplexity on moby-dick .*: float32 [\d.]+, int8 [\d.]+ \(-?[\d.]+%\)/);
  assert.ok(existsSync(join(dir, "onnx", "onnx", "model_quantized.onnx")));
  const gguf = plinth("export", "--model", run, "--format", "gguf", "--out", join(dir, "m.gguf"), "--quantize", "int8");
  assert.equal(gguf.status, 0, gguf.stderr);
  assert.match(gguf.stdout, /llama\.cpp perplexity: float32 [\d.]+, Q8_0 [\d.]+ \(-?[\d.]+%\)/);
  const imp = plinth("import", join(dir, "hf"), "--out", join(dir, "back"));
  assert.equal(imp.status, 0, imp.stderr);
  assert.match(imp.stdout, /GPT-2: .* vocab 384; tokenizer 384 tokens/);
  const gen = plinth("generate", "--model", join(dir, "back"), "--prompt", "Call me", "--max-tokens", "5", "--temperature", "0");
  assert.equal(gen.status, 0, gen.stderr);
});

test("plinth export --format onnx --quantize int8 on a BERT reports the masked-token accuracy change", () => {
  const bertRun = join(dir, "bert-run");
  saveBert(bertRun, tinyBert(tok, 20));
  tok.save(join(bertRun, "tokenizer.json"));
  const r = plinth("export", "--model", bertRun, "--format", "onnx", "--out", join(dir, "bert-onnx"), "--quantize", "int8");
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /masked-token top-1 accuracy on moby-dick \(\d+ masks\): float32 [\d.]+%, int8 [\d.]+% \(-?[\d.]+ points\)/);
});

test("plinth import reads a PyTorch-written checkpoint; bad input fails with a message and exit code", () => {
  const ok = plinth("import", join(fixtureDir, "hf", "bert"));
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /BERT: .* vocab 40/);
  assert.match(ok.stdout, /note: dropout probabilities set to 0/);
  const llama = join(dir, "llama");
  cpSync(join(fixtureDir, "hf", "gpt2"), llama, { recursive: true });
  writeFileSync(join(llama, "config.json"), JSON.stringify({ ...JSON.parse(readFileSync(join(llama, "config.json"), "utf8")), model_type: "llama" }));
  const bad = plinth("import", llama);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /plinth import: import: .*model_type "llama".*supported: gpt2/);
  const fmt = plinth("export", "--model", run, "--format", "tflite", "--out", join(dir, "x"));
  assert.equal(fmt.status, 2);
  assert.match(fmt.stderr, /--format must be hf, onnx or gguf, got "tflite"/);
  const bertGguf = plinth("export", "--model", join(fixtureDir, "hf", "bert"), "--format", "gguf", "--out", join(dir, "b.gguf"));
  assert.equal(bertGguf.status, 1);
  assert.match(bertGguf.stderr, /--format gguf writes GPT-2 models/);
});
