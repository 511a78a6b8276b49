// The plinth command: help for every command, clear usage errors, and generation from a saved model.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { GPT, gptConfig, saveGPT } from "../src/models/gpt/index.js";

const main = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "cli", "main.js");
const plinth = (...args: string[]) => spawnSync(process.execPath, [main, ...args], { encoding: "utf8" });

test("plinth lists its commands and each has --help with examples", () => {
  const top = plinth();
  assert.equal(top.status, 0);
  for (const cmd of ["demo", "generate", "info", "pretrain", "tokenizer", "scale"]) {
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
  assert.match(noPrompt.stderr, /--prompt is required/);
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
