// The plinth command: help for every command, clear usage errors, and generation from a saved model.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { GPT, gptConfig, saveGPT } from "../src/models/gpt/index.js";
import { BertForMaskedLM, bertConfig, saveBert } from "../src/models/bert/index.js";
import { trainBPE } from "../src/tokenizer/index.js";
import { mobyDick } from "../src/data/corpus.js";

const main = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "cli", "main.js");
const plinth = (...args: string[]) => spawnSync(process.execPath, [main, ...args], { encoding: "utf8" });

test("plinth lists its commands and each has --help with examples", () => {
  const top = plinth();
  assert.equal(top.status, 0);
  for (const cmd of ["demo", "generate", "info", "pretrain", "tokenizer", "scale", "fill-mask", "embed", "adapt", "eval", "audit", "task", "serve", "keys", "export", "import", "zero-shot", "search"]) {
    assert.match(top.stdout, new RegExp(`\\b${cmd}\\b`));
    const r = plinth(cmd, "--help");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Usage: plinth/);
    assert.match(r.stdout, /Example/);
  }
});

test("unknown commands, bad flags and missing models fail with a clear message", () => {
  const unknown = plinth("frobnicate");
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /unknown command "frobnicate"/);
  const badFlag = plinth("demo", "--time", "soon");
  assert.equal(badFlag.status, 2);
  assert.match(badFlag.stderr, /invalid duration "soon"/);
  const missing = plinth("generate", "--model", "/nonexistent/model", "--prompt", "hi");
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /config\.json does not exist/);
  const noPrompt = plinth("generate", "--model", "x");
  assert.equal(noPrompt.status, 2);
  assert.match(noPrompt.stderr, /--prompt \(or --chat\) is required/);
});

test("plinth generate continues a prompt with a saved byte-level model", () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-cli-"));
  try {
    saveGPT(dir, new GPT(gptConfig({ vocab_size: 257, n_positions: 32, n_embd: 16, n_layer: 1, n_head: 2, eos_token_id: 256, bos_token_id: 256 })));
    const r = plinth("generate", "--model", dir, "--prompt", "Call me", "--max-tokens", "5", "--temperature", "0");
    assert.equal(r.status, 0, r.stderr);
    assert.ok(r.stdout.startsWith("Call me"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("plinth info names the kernels and threads", () => {
  const r = plinth("info");
  assert.equal(r.status, 0);
  assert.match(r.stdout, /kernels: (avx512|avx2|portable)/);
  assert.match(r.stdout, /threads: \d+/);
});

test("plinth fill-mask and embed run on a saved BERT with its tokenizer", () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-cli-bert-"));
  try {
    const tok = trainBPE(mobyDick().slice(0, 20).map((d) => d.text), { vocabSize: 400 });
    tok.save(join(dir, "tokenizer.json"));
    saveBert(dir, new BertForMaskedLM(bertConfig({ vocab_size: 400, hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32, max_position_embeddings: 32 })));
    const fill = plinth("fill-mask", "--model", dir, "--text", "Call me [MASK].", "--top-k", "3");
    assert.equal(fill.status, 0, fill.stderr);
    assert.match(fill.stdout, /\[MASK\] at token \d+:\n(\s+[\d.]+%\s+".*"\n){3}/);
    const noMask = plinth("fill-mask", "--model", dir, "--text", "no mask here");
    assert.equal(noMask.status, 2);
    assert.match(noMask.stderr, /has no \[MASK\] token/);
    const emb = plinth("embed", "--model", dir, "--text", "the whale", "--text", "the sea");
    assert.equal(emb.status, 0, emb.stderr);
    assert.match(emb.stdout, /cosine similarity/);
    const json = plinth("embed", "--model", dir, "--text", "the whale", "--json");
    assert.equal(JSON.parse(json.stdout).embedding.length, 16);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
