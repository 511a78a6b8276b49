/**
 * Artifacts: uploaded files, adapters and training checkpoints, in a store every replica reaches.
 * Finished artifacts are addressed by content: a file is a blob named by the sha256 of its bytes;
 * a folder (an adapter) is a tree, a small JSON blob {files: {name: sha256}} whose own sha256 names
 * it. The same bytes stored twice are one blob, and a name can never point at changed bytes.
 * Work in progress (a job's checkpoints, a worker's output before it commits) lives in scratch
 * folders keyed by name.
 *
 * The default store is a folder (what a network file system gives a cluster):
 *
 *     <root>/blobs/<ab>/<sha256>        every blob, written atomically
 *     <root>/trees/<tree sha256>/       a tree checked out once, its files hard links to the blobs
 *     <root>/checkpoints/<job id>/      scratch: a job's checkpoints while it trains
 *     <root>/staging/<id>/              scratch: a worker's or an import's files before they are stored
 *
 *     const store = openArtifactStore("runs");
 *     const { sha256 } = await store.put(bytes);           // the same bytes again: the same blob
 *     const dir = await store.checkout(await store.putTree("runs/adapters/sentiment-lora"));
 *
 * An object store (S3, GCS, MinIO) plugs in behind the same interface: put/get/has/remove map to
 * PUT/GET/HEAD/DELETE of the key blobs/<sha256>; localPath and checkout download into a local
 * cache folder laid out as above (so a checked-out tree's folder names its content on every
 * machine); scratch folders stay on a shared disk or are synced to a prefix. Readers never write
 * into a blob or a checked-out tree, so a cache never needs invalidating.
 */
import { createHash, randomBytes } from "node:crypto";
import { copyFileSync, existsSync, linkSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { writeFileAtomic } from "../io/atomic.js";

export interface BlobRef {
  sha256: string;
  bytes: number;
}

/** Scratch kinds: mutable folders keyed by a name, shared by every replica. */
export type ScratchKind = "checkpoints" | "staging";

export interface ArtifactStore {
  /** Where it is, for messages and for worker processes to open the same store (openArtifactStore). */
  readonly location: string;
  /** Stores bytes under their sha256; storing the same bytes again is a no-op. */
  put(data: Uint8Array): Promise<BlobRef>;
  /** A blob's bytes; an ArtifactMissingError when the store has no such blob. */
  get(sha256: string): Promise<Buffer>;
  has(sha256: string): Promise<boolean>;
  /** A local file holding the blob's bytes, for readers that need a path (read it, never write it). */
  localPath(sha256: string): Promise<string>;
  /** Removes a blob; the caller makes sure no record names it any more. */
  remove(sha256: string): Promise<void>;
  /** Stores every file under a folder (recursively) as blobs, then the tree listing them; returns the tree's sha256. */
  putTree(dir: string): Promise<string>;
  /** A local folder holding a tree's files (read it, never write it); the same tree always gives the same folder. */
  checkout(tree: string): Promise<string>;
  /** The tree a checkout folder holds (its content address), or null for a folder that is not a checkout. */
  treeOf(dir: string): string | null;
  /** A mutable folder every replica reaches, for work in progress (created on use by the writer). */
  scratch(kind: ScratchKind, id: string): string;
}

export class ArtifactMissingError extends Error {
  constructor(readonly sha256: string, where: string) {
    super(`artifact store ${where}: no blob ${sha256}`);
    this.name = "ArtifactMissingError";
  }
}

const SHA = /^[0-9a-f]{64}$/;
const ID = /^[A-Za-z0-9_.-]{1,128}$/;

function checkSha(sha256: string): void {
  if (!SHA.test(sha256)) throw new Error(`artifact store: ${JSON.stringify(sha256)} is not a sha256 (64 lowercase hex digits)`);
}

const sha256Of = (data: Uint8Array): string => createHash("sha256").update(data).digest("hex");

/** A tree's listing: relative paths with "/" separators, sorted, so equal folders give equal trees. */
interface Tree {
  files: Record<string, string>;
}

function filesUnder(dir: string, at = dir): string[] {
  const out: string[] = [];
  for (const d of readdirSync(at, { withFileTypes: true })) {
    const p = join(at, d.name);
    if (d.isDirectory()) out.push(...filesUnder(dir, p));
    else if (d.isFile()) out.push(relative(dir, p).split(sep).join("/"));
  }
  return out.sort();
}

/** The default store: a folder, local or on a network file system every replica mounts. */
export class FolderArtifactStore implements ArtifactStore {
  readonly location: string;
  constructor(root: string) {
    this.location = resolve(root);
  }

  private blobPath(sha256: string): string {
    checkSha(sha256);
    return join(this.location, "blobs", sha256.slice(0, 2), sha256);
  }

  async put(data: Uint8Array): Promise<BlobRef> {
    const sha256 = sha256Of(data);
    const path = this.blobPath(sha256);
    if (!existsSync(path)) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileAtomic(path, data);  // two replicas storing the same bytes both rename the same content into place
    }
    return { sha256, bytes: data.byteLength };
  }

  async get(sha256: string): Promise<Buffer> {
    const path = this.blobPath(sha256);
    try {
      return readFileSync(path);
    } catch (e) {
      if ((e as { code?: string }).code === "ENOENT") throw new ArtifactMissingError(sha256, this.location);
      throw e;
    }
  }

  async has(sha256: string): Promise<boolean> {
    return existsSync(this.blobPath(sha256));
  }

  async localPath(sha256: string): Promise<string> {
    const path = this.blobPath(sha256);
    if (!existsSync(path)) throw new ArtifactMissingError(sha256, this.location);
    return path;
  }

  async remove(sha256: string): Promise<void> {
    rmSync(this.blobPath(sha256), { force: true });
  }

  async putTree(dir: string): Promise<string> {
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`artifact store: ${dir} is not a folder`);
    const files: Record<string, string> = {};
    for (const name of filesUnder(dir)) files[name] = (await this.put(readFileSync(join(dir, name)))).sha256;
    if (Object.keys(files).length === 0) throw new Error(`artifact store: ${dir} holds no files`);
    return (await this.put(Buffer.from(JSON.stringify({ files } satisfies Tree)))).sha256;
  }

  async checkout(tree: string): Promise<string> {
    checkSha(tree);
    const dest = join(this.location, "trees", tree);
    if (existsSync(dest)) return dest;
    let listing: Tree;
    try {
      listing = JSON.parse((await this.get(tree)).toString("utf8")) as Tree;
    } catch (e) {
      if (e instanceof ArtifactMissingError) throw e;
      throw new Error(`artifact store ${this.location}: blob ${tree} is not a tree (${(e as Error).message})`);
    }
    if (typeof listing?.files !== "object" || listing.files === null) throw new Error(`artifact store ${this.location}: blob ${tree} is not a tree`);
    // Built beside its place and renamed into it: a reader sees no folder or the whole tree.
    const partial = `${dest}.partial-${randomBytes(6).toString("hex")}`;
    try {
      for (const [name, sha] of Object.entries(listing.files)) {
        const target = resolve(partial, name);
        if (!target.startsWith(partial + sep)) throw new Error(`artifact store ${this.location}: tree ${tree} names a file outside itself: ${JSON.stringify(name)}`);
        mkdirSync(dirname(target), { recursive: true });
        const blob = await this.localPath(sha);
        try {
          linkSync(blob, target);
        } catch {
          copyFileSync(blob, target);  // a file system without hard links
        }
      }
      try {
        renameSync(partial, dest);
      } catch (e) {
        if (!existsSync(dest)) throw e;  // another replica checked the same tree out first: the same files
      }
    } finally {
      rmSync(partial, { recursive: true, force: true });
    }
    return dest;
  }

  treeOf(dir: string): string | null {
    const rel = relative(join(this.location, "trees"), resolve(dir));
    return SHA.test(rel) ? rel : null;
  }

  scratch(kind: ScratchKind, id: string): string {
    if (!ID.test(id)) throw new Error(`artifact store: scratch id ${JSON.stringify(id)} must be 1-128 characters of letters, digits, _ . -`);
    return join(this.location, kind, id);
  }
}

/**
 * The artifact store at a location: a folder path (the default, a shared folder). An object
 * store would be chosen here by its URL scheme (s3://bucket/prefix), with the same interface.
 */
export function openArtifactStore(location: string): ArtifactStore {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location)) {
    throw new Error(`artifact store ${location}: only a folder is supported (a local or network file system every replica reaches); object stores plug in behind the ArtifactStore interface (src/registry/artifacts.ts)`);
  }
  return new FolderArtifactStore(location);
}
