import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { BPETokenizer, IdBuffer, trainBPE, type HuggingFaceTokenizerJSON } from "../src/tokenizer/index.js";
import { pretokenize, textBlocks } from "../src/tokenizer/bytelevel.js";
import { mobyDick } from "../src/data/corpus.js";

const VOCAB = 2048;
const docs = mobyDick().map((d) => d.text);
const trainDocs: string[] = [];
for (let chars = 0, i = 0; chars < 300_000; i++) (trainDocs.push(docs[i]), (chars += docs[i].length));
const heldOut = docs.slice(trainDocs.length + 1);
const tok = trainBPE(trainDocs, { vocabSize: VOCAB });

const SOURCE = readFileSync(new URL("../../src/tokenizer/bpe.ts", import.meta.url), "utf8");
const CHINESE = "我们在海上航行。鲸鱼在远处喷水，船长下令追击！";
const EMOJI = "🐋🌊👍🏽 family: 👨‍👩‍👧‍👦, flags: 🇯🇵🇳🇴";
const PARAGRAPHS = heldOut.slice(0, 3).map((d) => d.slice(0, 4000));
const TRICKY = [
  "I'm sure they'll say it's what we'd do; THEY'LL SAY IT'S 'quoted' don't",
  "pi = 3.14159, 1,000,000 whales, 2024-06-01T12:00:00Z",
  "tabs\tand\t\tspaces   then\n\n\nnewlines  \n  trailing   ",
  " leading space and\r\nwindows line ends\r\n",
  "\uFEFFbyte order mark, nbsp\u00A0here, ideographic\u3000space",
  "x".repeat(3000),
  "the".repeat(700) + " " + " ".repeat(300),
  "Ünïcödé àccents, Ελληνικά, русский, العربية, हिन्दी",
];

function roundTrip(text: string): void {
  const ids = tok.encode(text);
  assert.equal(tok.decode(ids), text);
  assert.deepEqual(Array.from(tok.decodeBytes(ids)), Array.from(Buffer.from(text, "utf8")));
  assert.deepEqual(tok.encodeBytes(Buffer.from(text, "utf8")), ids, "encodeBytes of valid UTF-8 equals encode");
}

function bytesRoundTrip(bytes: Uint8Array): void {
  assert.deepEqual(Array.from(tok.decodeBytes(tok.encodeBytes(bytes))), Array.from(bytes));
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "plinth-tokenizer-"));
}

test("vocabulary has exactly the requested size, laid out specials, bytes, merges", () => {
  assert.equal(tok.vocabSize, VOCAB);
  const json = tok.toJSON();
  assert.equal(Object.keys(json.model.vocab).length, VOCAB);
  assert.ok(json.model.merges.length >= VOCAB - 5 - 256);
  assert.deepEqual(["<|endoftext|>", "[CLS]", "[SEP]", "[MASK]", "[PAD]"].map((t) => tok.tokenToId(t)), [0, 1, 2, 3, 4]);
  assert.equal(tok.idToToken(5), "!"); // byte 0x21, first in GPT-2's order
  assert.equal(tok.idToToken(5 + 255), "Ń"); // byte 0xad, the last stand-in
  assert.equal(tok.tokenToId("Ġ"), 5 + 220); // the space byte
  assert.ok(tok.encode(" the").length === 1 && tok.encode(" whale").length === 1, "common words merge into one token");
});

test("round trips: English, Chinese, emoji, TypeScript source, edge cases", () => {
  for (const text of [...PARAGRAPHS, CHINESE, EMOJI, SOURCE, ...TRICKY]) roundTrip(text);
  assert.deepEqual(tok.encode(""), []);
  assert.equal(tok.decode([]), "");
  assert.deepEqual(tok.encodeBytes(new Uint8Array(0)), []);
});

test("long texts are cut into blocks only where the pre-tokenizer would split anyway", () => {
  const text = [...TRICKY, SOURCE.slice(0, 3000), "a \n\n b\t\t c  \r\n  d\u3000\u3000e \u00A0f\u2028 g  'll\n's  1 2  !? ", CHINESE, EMOJI].join("  \n");
  const whole = pretokenize(text);
  for (const blockChars of [1, 2, 3, 5, 8, 13, 100, 1000]) {
    const blocks = textBlocks(text, blockChars);
    assert.equal(blocks.join(""), text);
    assert.ok(blocks.length > text.length / (blockChars * 50), `blocks of ${blockChars} characters are cut`);
    assert.deepEqual(blocks.flatMap(pretokenize), whole, `blocks of ${blockChars} characters`);
  }
});

test("invalid UTF-8 round-trips exactly through encodeBytes / decodeBytes", () => {
  const cases = [
    [0xff], [0x80], [0xc0, 0xaf], [0xe6, 0x88], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf0, 0x9f, 0x90],
    [...Buffer.from("我们"), 0xe6, 0x88, ...Buffer.from(" the whale ")], [0xef, 0xbb, 0xbf, 0xff, 0x41], [0xdc, 0x80, 0x20, 0xe6],
  ];
  for (const c of cases) bytesRoundTrip(Uint8Array.from(c));
  let seed = 12345;
  const random = new Uint8Array(20_000).map(() => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 24));
  bytesRoundTrip(random);
  const text = Buffer.from(PARAGRAPHS[0]);
  for (let i = 7; i < text.length; i += 97) text[i] = 0x80 + (i & 0x7f); // corrupt a byte here and there
  bytesRoundTrip(text);
  // decode() shows invalid bytes as U+FFFD, like any UTF-8 decoder.
  assert.equal(tok.decode(tok.encodeBytes(Uint8Array.from([0x41, 0xff, 0x42]))), "A\uFFFDB");
  // A lone surrogate in a string encodes as U+FFFD, as UTF-8 would.
  assert.equal(tok.decode(tok.encode("a\uD800b")), "a\uFFFDb");
});

test("special tokens in text are kept whole, or treated as text on request", () => {
  const text = "Call me Ishmael.<|endoftext|>[CLS] Some years ago[SEP][MASK][PAD]<|endoftext";
  const ids = tok.encode(text);
  assert.deepEqual(ids.filter((id) => id < 5), [0, 1, 2, 3, 4]);
  assert.equal(tok.decode(ids), text);
  const plain = tok.encode(text, { specialTokens: false });
  assert.ok(plain.every((id) => id >= 5));
  assert.equal(tok.decode(plain), text);
  assert.deepEqual(tok.encode("<|endoftext|><|endoftext|>"), [0, 0]);
});

test("encodeInto appends the ids encode gives (special tokens as text), through a filled chunk cache", () => {
  const fresh = BPETokenizer.fromJSON(tok.toJSON());
  // The reference shares no code with ours (and so not its cache).
  const hf = new Tokenizer(tok.toJSON() as HuggingFaceTokenizerJSON, { clean_up_tokenization_spaces: false });
  const out = new IdBuffer();
  // More distinct chunks than the cache holds (64K), so it is cleared and filled again on the way.
  const numbers = Array.from({ length: 70_000 }, (_, i) => `v${i}x`).join(" ");
  const texts = [...PARAGRAPHS, ...TRICKY, CHINESE, EMOJI, "lone \ud800 surrogate", numbers, ...PARAGRAPHS, SOURCE];
  for (const text of texts) {
    out.length = 0;
    fresh.encodeInto(text, out);
    assert.deepEqual(Array.from(out.ids.subarray(0, out.length)), hf.encode(text, { add_special_tokens: false }).ids, text.slice(0, 40));
  }
  out.length = 0;
  fresh.encodeInto("a <|endoftext|> b", out);
  assert.deepEqual(Array.from(out.ids.subarray(0, out.length)), [...tok.encode("a <|"), ...tok.encode("endoftext"), ...tok.encode("|> b")]);
  out.length = 0;
  fresh.encodeInto(CHINESE, out);
  fresh.encodeInto(EMOJI, out);
  assert.deepEqual(Array.from(out.ids.subarray(0, out.length)), [...tok.encode(CHINESE), ...tok.encode(EMOJI)]);
});

test("training is deterministic", () => {
  const again = trainBPE(trainDocs, { vocabSize: VOCAB });
  assert.deepEqual(again.toJSON(), tok.toJSON());
  const withProgress = trainBPE(trainDocs.slice(0, 20), { vocabSize: 600, minFrequency: 2, onProgress: () => {} });
  assert.deepEqual(withProgress.toJSON(), trainBPE(trainDocs.slice(0, 20), { vocabSize: 600 }).toJSON());
});

test("training stops early, with a smaller vocabulary, when no pair is frequent enough", () => {
  const small = trainBPE(["abc abc abd"], { vocabSize: 1000, specialTokens: ["<|endoftext|>"] });
  assert.ok(small.vocabSize > 257 && small.vocabSize < 1000);
  const none = trainBPE(["abc abc"], { vocabSize: 1000, minFrequency: 100, specialTokens: [] });
  assert.equal(none.vocabSize, 256);
  assert.deepEqual(Array.from(none.decodeBytes(none.encode("abc"))), [0x61, 0x62, 0x63]);
});

test("save → load gives identical ids; the write is atomic and leaves no temporary file", () => {
  const dir = tempDir();
  try {
    const file = tok.save(join(dir, "tokenizer.json"));
    assert.deepEqual(readdirSync(dir), ["tokenizer.json"]);
    const loaded = BPETokenizer.load(file);
    for (const text of [...PARAGRAPHS, CHINESE, EMOJI, SOURCE]) assert.deepEqual(loaded.encode(text), tok.encode(text));
    assert.deepEqual(loaded.toJSON(), tok.toJSON());
    assert.deepEqual(JSON.parse(readFileSync(file, "utf8")), JSON.parse(JSON.stringify(tok.toJSON())));
    assert.equal(BPETokenizer.load(dir).vocabSize, VOCAB, "a folder means its tokenizer.json");
    tok.save(dir); // overwrite in place
    assert.deepEqual(readdirSync(dir), ["tokenizer.json"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the file follows Hugging Face's tokenizer.json layout", () => {
  const json = tok.toJSON();
  assert.equal(json.version, "1.0");
  assert.equal(json.normalizer, null);
  assert.deepEqual(json.pre_tokenizer, { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true });
  assert.equal(json.decoder.type, "ByteLevel");
  assert.equal(json.model.type, "BPE");
  assert.deepEqual(json.added_tokens[0], { id: 0, content: "<|endoftext|>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  assert.ok(json.model.merges.every((m) => Array.isArray(m) && m.length === 2));
  const dir = tempDir();
  try {
    const text = readFileSync(tok.save(join(dir, "t.json")), "utf8");
    const vocabText = text.slice(text.indexOf('"vocab": {'), text.indexOf('"merges": ['));
    const ids = [...vocabText.matchAll(/^ {6}".*": (\d+),?$/gm)].map((m) => Number(m[1]));
    assert.deepEqual(ids, Array.from({ length: VOCAB }, (_, i) => i), "the vocabulary is written in id order");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("@huggingface/tokenizers reads our file to the same ids", () => {
  const dir = tempDir();
  try {
    const file = tok.save(dir);
    const json = JSON.parse(readFileSync(file, "utf8")) as HuggingFaceTokenizerJSON;
    const hf = new Tokenizer(json, { clean_up_tokenization_spaces: false });
    const legacy = { ...json, model: { ...json.model, merges: json.model.merges.map(([a, b]) => `${a} ${b}`) } };
    const hfLegacy = new Tokenizer(legacy, {});
    const ours = BPETokenizer.fromJSON(legacy);
    const texts = [...PARAGRAPHS, SOURCE, CHINESE, EMOJI, ...TRICKY, "Call me Ishmael.<|endoftext|>[CLS] x[SEP]", "a\uD800b"];
    for (const text of texts) {
      const expected = hf.encode(text, { add_special_tokens: false }).ids;
      assert.deepEqual(tok.encode(text), expected, `ids differ on ${JSON.stringify(text.slice(0, 40))}`);
      assert.deepEqual(ours.encode(text), expected, "the \"a b\" merge format reads the same");
      assert.deepEqual(hfLegacy.encode(text, { add_special_tokens: false }).ids, expected);
      if (expected.length > 0) assert.equal(hf.decode(expected), tok.decode(expected));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("bad inputs give clear errors", () => {
  assert.throws(() => trainBPE(trainDocs, { vocabSize: 260 }), /trainBPE: vocabSize 260 is too small: 5 special tokens \+ 256 byte tokens need at least 261/);
  assert.throws(() => trainBPE([], { vocabSize: 1000 }), /trainBPE: the corpus is empty/);
  assert.throws(() => trainBPE(["", ""], { vocabSize: 1000 }), /trainBPE: the corpus is empty/);
  assert.throws(() => trainBPE(["<|endoftext|>"], { vocabSize: 1000 }), /trainBPE: the corpus is empty/);
  assert.throws(() => trainBPE(["x"], { vocabSize: 1000, specialTokens: ["[A]", "[A]"] }), /listed twice/);
  assert.throws(() => tok.decode([VOCAB]), /BPETokenizer.decode: id 2048 is not in the vocabulary \(0..2047\)/);
  assert.throws(() => tok.decode([1.5]), /id 1.5 is not in the vocabulary/);

  const dir = tempDir();
  try {
    assert.throws(() => BPETokenizer.load(join(dir, "missing.json")), /BPETokenizer.load: no file at .*missing.json/);
    const corrupt = join(dir, "corrupt.json");
    writeFileSync(corrupt, '{"version": "1.0", "model": {');
    assert.throws(() => BPETokenizer.load(corrupt), /corrupt.json is not valid JSON/);

    const good = tok.toJSON();
    const write = (name: string, json: unknown): string => (writeFileSync(join(dir, name), JSON.stringify(json)), join(dir, name));
    assert.throws(() => BPETokenizer.load(write("wp.json", { ...good, model: { ...good.model, type: "WordPiece" } })), /wp.json: model.type is "WordPiece"; only "BPE" models are supported/);
    const badMerges = [...good.model.merges, ["Ġthe", "zzz-not-a-token"]];
    assert.throws(() => BPETokenizer.load(write("merges.json", { ...good, model: { ...good.model, merges: badMerges } })), /merges.json: model.merges\[\d+\] .* refers to "zzz-not-a-token", which is not in model.vocab/);
    assert.throws(() => BPETokenizer.fromJSON({ ...good, model: { ...good.model, merges: ["a b c"] } }), /model.merges\[0\] is "a b c"; expected "a b" or \["a", "b"\]/);
    assert.throws(() => BPETokenizer.fromJSON([1, 2]), /expected a JSON object at the top level/);
    assert.throws(() => BPETokenizer.fromJSON({ ...good, model: undefined }), /"model" is missing/);
    assert.throws(() => BPETokenizer.fromJSON({ ...good, pre_tokenizer: { type: "Whitespace" } }), /pre_tokenizer is .*Whitespace.*expected/);
    const gap = Object.fromEntries(Object.entries(good.model.vocab).filter(([, id]) => id !== 700));
    assert.throws(() => BPETokenizer.fromJSON({ ...good, model: { ...good.model, vocab: gap, merges: [] } }), /no token has id 700/);
    const noNewline = Object.fromEntries(Object.entries(good.model.vocab).filter(([t]) => t !== "Ċ").map(([t, id], i) => [t, i]));
    assert.throws(() => BPETokenizer.fromJSON({ ...good, added_tokens: [], model: { ...good.model, vocab: noNewline, merges: [] } }), /byte 0x0a \(stand-in "Ċ"\) has no token/);
    assert.ok(!existsSync(join(dir, "tokenizer.json")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
