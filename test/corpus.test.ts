// Corpora: built-in sources, files/folders/globs/JSONL, dedup, split, shards and manifest,
// and the handling of empty, binary, huge-line and invalid-UTF-8 input.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ByteTokenizer } from "../src/data/bytes.js";
import { blockSizeFor, checkSource, globToRegExp, loadSource, loadSources, splitByHash, textBlocks, wordnetDocs } from "../src/data/sources.js";
import { prepareCorpus } from "../src/data/prepare.js";
import { MemoryTokens, ShardedTokens } from "../src/data/tokens.js";

const tmp = () => mkdtempSync(join(tmpdir(), "plinth-corpus-"));

test("built-in sources load from npm packages with hashes", () => {
  for (const [name, min] of [["moby-dick", 100], ["sotu", 200], ["spam-ham", 3000], ["typescript", 50]] as const) {
    const s = loadSource(name);
    assert.ok(s.docs.length >= min, `${name}: ${s.docs.length} documents`);
    assert.ok(s.files.length > 0 && s.files.every((f) => /^[0-9a-f]{64}$/.test(f.sha256) && f.bytes > 0));
  }
  assert.ok(loadSource("spam-ham").docs.every((d) => !d.id.includes("spam-1") && !d.id.includes("spam-2")));
  assert.ok(loadSource("typescript").docs.some((d) => /\binterface \w+/.test(d.text)));
});

test("wordnet: every synset as a dictionary line, 200 per document; malformed files are named", () => {
  const s = loadSource("wordnet");
  const lines = s.docs.flatMap((d) => d.text.split("\n"));
  assert.ok(lines.length > 110_000, `${lines.length} synsets`);
  assert.ok(s.docs.every((d) => d.text.split("\n").length <= 200 && /^wordnet\/(noun|verb|adj|adv)\/\d+$/.test(d.id)));
  assert.ok(lines.includes("angry: feeling or showing anger; \"angry at the weather\"; \"angry customers\"; \"an angry silence\"; \"sending angry letters to the papers\""));
  assert.ok(lines.every((l) => !l.includes("_") || !/^[^:]*_/.test(l)), "multi-word lemmas use spaces");
  assert.ok(!lines.some((l) => l.includes("Permission to use, copy, modify")), "the licence header is not text");
  const dir = tmp();
  try {
    for (const pos of ["noun", "verb", "adj", "adv"]) writeFileSync(join(dir, `data.${pos}`), "  1 licence line\n00001740 03 n 01 entity 0 000 | that which exists\n");
    assert.equal(wordnetDocs(dir)[0].text, "entity: that which exists");
    writeFileSync(join(dir, "data.adv"), "00001740 03 r 05 well 0 | too few words for the count\n");
    assert.throws(() => wordnetDocs(dir), /wordnet: data\.adv: malformed synset line: 00001740/);
    writeFileSync(join(dir, "data.adv"), "00001740 03 r 01 well 0 000 no gloss separator\n");
    assert.throws(() => wordnetDocs(dir), /wordnet: data\.adv: a synset line without " \| " gloss/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("files, folders, globs and JSONL fields; exact duplicates dropped", () => {
  const dir = tmp();
  try {
    mkdirSync(join(dir, "a", "b"), { recursive: true });
    writeFileSync(join(dir, "a", "one.txt"), "first document");
    writeFileSync(join(dir, "a", "b", "two.md"), "second document");
    writeFileSync(join(dir, "a", "b", "dup.txt"), "first document");
    writeFileSync(join(dir, "rows.jsonl"), '{"text": "row one", "body": "b1"}\n\n{"text": "row two", "body": "b2"}\n');
    assert.equal(loadSource(join(dir, "a")).docs.length, 3);
    assert.deepEqual(loadSource(`${dir}/a/**/*.md`).docs.map((d) => d.text), ["second document"]);
    assert.deepEqual(loadSource(join(dir, "rows.jsonl")).docs.map((d) => d.text), ["row one", "row two"]);
    assert.deepEqual(loadSource(`${join(dir, "rows.jsonl")}:body`).docs.map((d) => d.text), ["b1", "b2"]);
    const all = loadSources([join(dir, "a"), join(dir, "rows.jsonl")]);
    assert.equal(all.docs.length, 4);
    assert.equal(all.duplicates, 1);
    assert.ok(globToRegExp("**/*.ts").test("x/y/z.ts") && globToRegExp("**/*.ts").test("z.ts") && !globToRegExp("*.ts").test("x/z.ts"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("bad input: empty corpus, binary files, folders without text, bad JSONL, invalid UTF-8, a 100 MB line", () => {
  const dir = tmp();
  try {
    mkdirSync(join(dir, "empty"));
    assert.throws(() => loadSources([join(dir, "empty")]), /no text found/);
    mkdirSync(join(dir, "bin"));
    writeFileSync(join(dir, "bin", "x.bin"), Buffer.from([0, 1, 2, 3, 0, 255]));
    assert.throws(() => loadSources([join(dir, "bin")]), /no text found.*1 binary files skipped/);
    writeFileSync(join(dir, "bad.jsonl"), '{"text": "ok"}\n{broken\n');
    assert.throws(() => loadSource(join(dir, "bad.jsonl")), /bad\.jsonl:2 is not valid JSON/);
    writeFileSync(join(dir, "nofield.jsonl"), '{"body": "x"}\n');
    assert.throws(() => loadSource(join(dir, "nofield.jsonl")), /no string field "text"/);
    assert.throws(() => loadSource(join(dir, "missing.txt")), /no such file or folder/);
    writeFileSync(join(dir, "latin1.txt"), Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0x6f, 0x6b]));
    const s = loadSource(join(dir, "latin1.txt"));
    assert.deepEqual(s.invalidUtf8Files, [join(dir, "latin1.txt")]);
    assert.equal(s.docs[0].text, "caf\uFFFD ok");
    writeFileSync(join(dir, "huge.txt"), "word ".repeat(20_000_000));
    const huge = loadSource(join(dir, "huge.txt"));
    assert.equal(huge.docs[0].text.length, 100_000_000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("prepare writes shards and a manifest, splits by document, and reuses a matching folder", async () => {
  const dir = tmp();
  try {
    const tok = new ByteTokenizer();
    const first = await prepareCorpus({ specs: ["moby-dick"], tokenizer: tok, outDir: dir, valFraction: 0.1, shardTokens: 200_000 });
    assert.equal(first.reused, false);
    const m = first.manifest;
    assert.ok(m.train.shards.length > 1, "expected several shards");
    assert.equal(m.train.documents + m.val.documents, m.documents);
    assert.equal(first.train.length, m.train.tokens);
    assert.equal(m.train.tokens, m.train.bytes + m.train.documents);  // bytes + one end-of-text per document
    assert.equal(m.dtype, "uint16");
    const window = new Int32Array(50);
    first.train.read(199_980, window);  // across a shard boundary
    assert.ok(window.every((t) => t >= 0 && t <= 256));
    const saved = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
    assert.equal(saved.sources[0].files[0].sha256, m.sources[0].files[0].sha256);
    const again = await prepareCorpus({ specs: ["moby-dick"], tokenizer: tok, outDir: dir, valFraction: 0.1, shardTokens: 200_000 });
    assert.equal(again.reused, true);
    assert.throws(() => new MemoryTokens(new Int32Array(3)).read(2, new Int32Array(2)), /outside the 3 tokens/);
    const docs = loadSource("sotu").docs;
    const a = splitByHash(docs, 0.1), b = splitByHash([...docs].reverse(), 0.1);
    assert.deepEqual(new Set(a.val.map((d) => d.id)), new Set(b.val.map((d) => d.id)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("one long document is split by paragraph blocks, deterministically; too little text says how much to give", () => {
  const paragraphs = Array.from({ length: 400 }, (_, i) => `Paragraph ${i}: ${"call me Ishmael. ".repeat(20 + (i % 7))}`);
  const doc = { id: "corpus.txt", text: paragraphs.join("\n\n") + "\n" };
  const a = splitByHash([doc], 0.02), b = splitByHash([doc], 0.02);
  assert.equal(a.unit, "block");
  assert.deepEqual(a, b);
  assert.ok(a.train.length > 0 && a.val.length > 0);
  const valChars = a.val.reduce((n, d) => n + d.text.length, 0);
  assert.ok(valChars > 0 && valChars < 0.1 * doc.text.length, `${valChars} of ${doc.text.length} characters held out`);
  // Every character lands in exactly one split, and cuts fall on paragraph breaks.
  assert.equal([...a.train, ...a.val].reduce((n, d) => n + d.text.length, 0), doc.text.length);
  for (const d of a.val) assert.match(d.text, /^Paragraph \d+:/);
  const blocks = textBlocks(doc.text, blockSizeFor(doc.text.length));
  assert.equal(blocks.join(""), doc.text);
  assert.ok(blocks.slice(0, -1).every((t) => t.endsWith("\n\n")));
  // Text without blank lines is cut at line breaks, else at the size, never inside a surrogate pair.
  assert.ok(textBlocks("line of text\n".repeat(500), 300).slice(0, -1).every((t) => t.endsWith("\n")));
  const emoji = "😀".repeat(1000);
  const cut = textBlocks(emoji, 256);
  assert.equal(cut.join(""), emoji);
  assert.ok(cut.every((t) => !/[\uD800-\uDBFF]$/.test(t)));
  // A few documents whose hashes all fall on one side are split by blocks too; many documents by document.
  const few = [doc, { id: "b.txt", text: paragraphs.slice(0, 50).reverse().join("\n\n") }];
  assert.equal(splitByHash(few, 0.02).unit, "block");
  assert.equal(splitByHash(loadSource("sotu").docs, 0.02).unit, "document");
  assert.throws(() => splitByHash([{ id: "tiny.txt", text: "too short" }], 0.02), /9 characters of text in 1 document\(s\) are too little.*give more text with --data/);
});

test("corpus errors say what to do: empty file, empty folder, too little text for a window, a stale empty split", async () => {
  const dir = tmp();
  try {
    writeFileSync(join(dir, "empty.txt"), "");
    mkdirSync(join(dir, "nothing"));
    assert.throws(() => checkSource(join(dir, "empty.txt")), /the file is empty; give a file with text in it/);
    assert.throws(() => checkSource(join(dir, "nothing")), /the folder has no files; give a folder with text files in it/);
    assert.throws(() => checkSource(join(dir, "missing.txt")), /no such file or folder \(built-in sources: moby-dick/);
    assert.doesNotThrow(() => checkSource("moby-dick"));
    assert.throws(() => loadSources([join(dir, "empty.txt")]), /no text found in .*empty\.txt \(the file is empty\); give --data a text file, a folder/);
    assert.throws(() => loadSources([join(dir, "nothing")]), /no text found in .*nothing \(the folder has no files\)/);
    writeFileSync(join(dir, "short.txt"), Array.from({ length: 40 }, (_, i) => `Line ${i} of a short text.`).join("\n\n"));
    const tok = new ByteTokenizer();
    await assert.rejects(
      prepareCorpus({ specs: [join(dir, "short.txt")], tokenizer: tok, outDir: join(dir, "data"), minTokens: 513 }),
      /validation split holds \d+ tokens, fewer than one training window of 513 \(--ctx \+ 1\).*give more text with --data \(about [\d,]+ KB or more at this --ctx\) or a smaller --ctx/,
    );
    // A manifest left by an older version with an empty validation split is prepared again, not reused.
    const ok = await prepareCorpus({ specs: [join(dir, "short.txt")], tokenizer: tok, outDir: join(dir, "data2") });
    assert.equal(ok.manifest.split?.unit, "block");
    const manifest = JSON.parse(readFileSync(join(dir, "data2", "manifest.json"), "utf8"));
    writeFileSync(join(dir, "data2", "manifest.json"), JSON.stringify({ ...manifest, val: { ...manifest.val, shards: [] } }));
    assert.equal((await prepareCorpus({ specs: [join(dir, "short.txt")], tokenizer: tok, outDir: join(dir, "data2") })).reused, false);
    assert.throws(() => new ShardedTokens([], "uint16"), /no shard files, so this split of the corpus is empty; prepare the corpus again from more text/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
