// The artifact store (registry/artifacts.ts): blobs by sha256, trees checked out once, scratch
// folders; and the server's uploads through it (the same bytes uploaded twice are one blob, kept
// until the last file naming it is deleted).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { ArtifactMissingError, FolderArtifactStore, openArtifactStore } from "../src/registry/index.js";
import { createServer } from "../src/serve/index.js";
import { makeFixture, writeDataset } from "./helpers/serve_fixture.js";

const root = mkdtempSync(join(tmpdir(), "plinth-artifacts-"));
after(() => rmSync(root, { recursive: true, force: true }));
const sha = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");

test("blobs are addressed by their sha256: the same bytes are stored once, missing ones are a clear error", async () => {
  const store = openArtifactStore(join(root, "a"));
  const bytes = Buffer.from("the movie was good\n");
  const ref = await store.put(bytes);
  assert.deepEqual(ref, { sha256: sha(bytes), bytes: bytes.length });
  assert.deepEqual(await store.put(Buffer.from(bytes)), ref);
  const blobs = readdirSync(join(root, "a", "blobs"), { recursive: true }).filter((p) => statSync(join(root, "a", "blobs", String(p))).isFile());
  assert.equal(blobs.length, 1);
  assert.deepEqual(await store.get(ref.sha256), bytes);
  assert.deepEqual(readFileSync(await store.localPath(ref.sha256)), bytes);
  assert.equal(await store.has(ref.sha256), true);
  await store.remove(ref.sha256);
  assert.equal(await store.has(ref.sha256), false);
  await assert.rejects(store.get(ref.sha256), ArtifactMissingError);
  await assert.rejects(store.get("../../etc/passwd"), /is not a sha256/);
  assert.throws(() => openArtifactStore("s3://bucket/prefix"), /only a folder is supported/);
  assert.throws(() => store.scratch("checkpoints", "../x"), /scratch id/);
});

test("a folder is stored as a tree: equal folders give one tree and one checkout, with the same bytes", async () => {
  const store = new FolderArtifactStore(join(root, "b"));
  const make = (dir: string, weights: string) => {
    mkdirSync(join(dir, "sub"), { recursive: true });
    writeFileSync(join(dir, "adapter.json"), '{"method":"lora"}');
    writeFileSync(join(dir, "adapter.safetensors"), weights);
    writeFileSync(join(dir, "sub", "notes.txt"), "nested");
  };
  make(join(root, "one"), "AAAA");
  make(join(root, "two"), "AAAA");
  make(join(root, "three"), "BBBB");
  const t1 = await store.putTree(join(root, "one")), t2 = await store.putTree(join(root, "two")), t3 = await store.putTree(join(root, "three"));
  assert.equal(t1, t2);
  assert.notEqual(t1, t3);
  const dir = await store.checkout(t1);
  assert.equal(await store.checkout(t2), dir);
  assert.equal(store.treeOf(dir), t1);
  assert.equal(store.treeOf(join(root, "one")), null);
  assert.equal(readFileSync(join(dir, "adapter.safetensors"), "utf8"), "AAAA");
  assert.equal(readFileSync(join(dir, "sub", "notes.txt"), "utf8"), "nested");
  assert.equal(readFileSync(join(await store.checkout(t3), "adapter.safetensors"), "utf8"), "BBBB");
  // A blob that is not a tree, and a tree naming a file outside itself, are refused.
  const notTree = (await store.put(Buffer.from("not json"))).sha256;
  await assert.rejects(store.checkout(notTree), /is not a tree/);
  const evil = (await store.put(Buffer.from(JSON.stringify({ files: { "../escape": sha("AAAA") } })))).sha256;
  await assert.rejects(store.checkout(evil), /outside itself/);
  assert.equal(existsSync(join(root, "b", "trees", "escape")), false);
  await assert.rejects(store.putTree(join(root, "missing")), /is not a folder/);
});

test("uploads go through the store: one blob for equal uploads, removed with the last file, content read back", async () => {
  const fx = await makeFixture();
  const server = await createServer({ registry: fx.dbPath, dataDir: fx.dataDir, runJobs: false });
  try {
    const url = await server.listen({ port: 0 });
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: fx.keyA, maxRetries: 0 });
    const other = new OpenAI({ baseURL: `${url}/v1`, apiKey: fx.keyB, maxRetries: 0 });
    writeDataset(join(fx.root, "train.jsonl"), 12);
    const bytes = readFileSync(join(fx.root, "train.jsonl"));
    const a = await client.files.create({ file: await toFile(bytes, "train.jsonl"), purpose: "fine-tune" });
    const b = await other.files.create({ file: await toFile(bytes, "same.jsonl"), purpose: "fine-tune" });
    const digest = sha(bytes);
    const entry = (await server.registry.jobs.file(a.id))!;
    assert.equal(entry.sha256, digest);
    assert.equal(entry.path, await server.artifacts.localPath(digest));
    assert.equal((await server.registry.jobs.file(b.id))!.path, entry.path);
    assert.deepEqual(Buffer.from(await (await client.files.content(a.id)).arrayBuffer()), bytes);
    // Deleting one tenant's file keeps the other's bytes; deleting the last removes them.
    await client.files.delete(a.id);
    assert.equal(await server.artifacts.has(digest), true);
    assert.deepEqual(Buffer.from(await (await other.files.content(b.id)).arrayBuffer()), bytes);
    await other.files.delete(b.id);
    assert.equal(await server.artifacts.has(digest), false);
  } finally {
    await server.close();
    await fx.cleanup();
  }
});
