/**
 * Registering adapters made outside the server (by `plinth adapt`): the folder's adapter.json is
 * checked against a registered base by content hash, its two files are stored in the artifact
 * store as a tree (so the server owns them, as it owns the adapters its jobs train, and a later
 * change to the source folder cannot change what the registry serves), and the tree's checkout
 * is registered for one tenant. Registering the same folder again under the same name is a no-op,
 * so `plinth serve --adapters` can run at every start.
 *
 *     importAdapter(registry.catalog, { tenant: "acme", dir: "runs/adapters/sentiment-lora", artifacts: openArtifactStore("runs") });
 *     // -> { entry: { name: "sentiment-lora", base: "tiny", ... }, created: true }
 */
import { randomBytes } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import type { ArtifactStore } from "./artifacts.js";
import { type AdapterManifest, readAdapterManifest, sha256File } from "../adapt/artifact.js";
import { type AdapterEntry, type Catalog, type ModelEntry, NAME_PATTERN } from "./catalog.js";
import { tenantProblem } from "./keys.js";
import { isUniqueViolation } from "./store.js";

/** The files an adapter folder holds (src/adapt/artifact.ts); nothing else is copied. */
const ADAPTER_FILES = ["adapter.json", "adapter.safetensors"] as const;

export type AdapterImportCode = "invalid_tenant" | "invalid_adapter" | "base_not_found" | "base_mismatch" | "invalid_name" | "name_taken";

/** Why an adapter folder was refused; `param` names the request field at fault. */
export class AdapterImportError extends Error {
  constructor(readonly code: AdapterImportCode, message: string, readonly param: "tenant" | "dir" | "base" | "name") {
    super(message);
    this.name = "AdapterImportError";
  }
}

export interface AdapterImport {
  tenant: string;
  /** The folder `plinth adapt` wrote (adapter.json + adapter.safetensors). */
  dir: string;
  /** Default: the folder's name. */
  name?: string;
  /** The registered base's name; default: the registered base whose weights hash the manifest names. */
  base?: string;
  /** Where the copy goes (a tree of the adapter's two files), shared by every replica. */
  artifacts: ArtifactStore;
}

export interface ImportedAdapter {
  entry: AdapterEntry;
  /** False when the tenant already had this adapter (same name, base and weights). */
  created: boolean;
}

/** A folder name as an adapter name: characters outside letters, digits, _ . - become "-". */
export function defaultAdapterName(dir: string): string {
  return basename(resolve(dir)).replace(/[^A-Za-z0-9_.-]+/g, "-").slice(0, 64) || "adapter";
}

/** The adapter folders in `dir`: dir itself if it holds adapter.json, else its sub-folders that do, sorted by name. */
export function adapterFolders(dir: string): string[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new AdapterImportError("invalid_adapter", `adapters: ${dir} is not a folder`, "dir");
  if (existsSync(join(dir, "adapter.json"))) return [dir];
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(dir, d.name, "adapter.json")))
    .map((d) => join(dir, d.name))
    .sort();
}

function manifestOf(dir: string): AdapterManifest {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new AdapterImportError("invalid_adapter", `adapter ${dir}: not a folder (expected a folder from plinth adapt with adapter.json and adapter.safetensors)`, "dir");
  }
  let manifest: AdapterManifest;
  try {
    manifest = readAdapterManifest(dir);
  } catch (e) {
    throw new AdapterImportError("invalid_adapter", (e as Error).message, "dir");
  }
  if (!existsSync(join(dir, "adapter.safetensors"))) throw new AdapterImportError("invalid_adapter", `adapter ${dir}: ${join(dir, "adapter.safetensors")} does not exist`, "dir");
  return manifest;
}

/** The registered base the adapter was made for, checked by the sha256 of its weights. */
async function baseOf(catalog: Catalog, dir: string, manifest: AdapterManifest, name: string | undefined): Promise<ModelEntry> {
  const want = manifest.base;
  if (name !== undefined) {
    const model = await catalog.model(name);
    if (model === undefined) {
      throw new AdapterImportError("base_not_found", `No base model named '${name}' is registered; register the base adapter ${dir} was made for first (plinth serve --model ${name}=<dir>, or POST /v1/plinth/models).`, "base");
    }
    if (model.sha256 !== want.sha256) {
      throw new AdapterImportError("base_mismatch", `Adapter ${dir} was made for base sha256 ${want.sha256} (${want.model_type}), but '${name}' has sha256 ${model.sha256} (${model.modelType}); register it on the base it was trained on.`, "base");
    }
    return model;
  }
  // The same weights may be registered under two names: the oldest registration is the base.
  const model = (await catalog.models()).find((m) => m.sha256 === want.sha256);
  if (model === undefined) {
    throw new AdapterImportError("base_not_found", `Adapter ${dir} was made for a ${want.model_type} base with sha256 ${want.sha256}, and no registered base has those weights; register that base first (plinth serve --model name=<dir>, or POST /v1/plinth/models).`, "base");
  }
  return model;
}

/** Validates an adapter folder against its base, stores it in the artifact store and registers the stored copy for the tenant. */
export async function importAdapter(catalog: Catalog, o: AdapterImport): Promise<ImportedAdapter> {
  const tenantError = tenantProblem(o.tenant);
  if (tenantError !== null) throw new AdapterImportError("invalid_tenant", `Invalid tenant: ${tenantError}`, "tenant");
  const manifest = manifestOf(o.dir);
  const base = await baseOf(catalog, o.dir, manifest, o.base);
  const name = o.name ?? defaultAdapterName(o.dir);
  if (!NAME_PATTERN.test(name)) throw new AdapterImportError("invalid_name", `Adapter name ${JSON.stringify(name)} must be 1-64 characters of letters, digits, _ . -`, "name");
  const sha256 = sha256File(join(o.dir, "adapter.safetensors"));
  const existing = (await catalog.adapters(o.tenant)).find((a) => a.name === name);
  if (existing !== undefined) {
    if (existing.base === base.name && existing.sha256 === sha256) return { entry: existing, created: false };
    throw new AdapterImportError("name_taken", `Tenant ${o.tenant} already has an adapter named '${name}' (${existing.base}:${existing.name}, adapter sha256 ${existing.sha256.slice(0, 12)}…) with other weights or another base; choose another name.`, "name");
  }

  // Staged, checked and stored by content: the registered folder is the tree's checkout.
  const staging = o.artifacts.scratch("staging", `import-${randomBytes(8).toString("hex")}`);
  let dest: string;
  mkdirSync(staging, { recursive: true });
  try {
    for (const f of ADAPTER_FILES) copyFileSync(join(o.dir, f), join(staging, f));
    if (sha256File(join(staging, "adapter.safetensors")) !== sha256) {
      throw new AdapterImportError("invalid_adapter", `adapter ${o.dir}: adapter.safetensors changed while it was being copied; try again`, "dir");
    }
    dest = await o.artifacts.checkout(await o.artifacts.putTree(staging));
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  try {
    return { entry: await catalog.addAdapter(o.tenant, name, base.name, resolve(dest)), created: true };
  } catch (e) {
    // The tree stays: it is content-addressed, and another registration may share it.
    // Another registration took the name between the check above and this insert.
    if (isUniqueViolation(e)) throw new AdapterImportError("name_taken", `Tenant ${o.tenant} already has an adapter named '${name}'; choose another name.`, "name");
    throw e;
  }
}
