/**
 * Models and adapters. A base model is a folder (config.json + model.safetensors) named once
 * and identified by the sha256 of its weights; an adapter belongs to one tenant, is bound to
 * its base by that hash, and records its parent (the base, or the adapter it was trained
 * from) so lineage can be walked back to the root base.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { baseIdentity, readAdapterManifest, sha256File } from "../adapt/artifact.js";
import { type Database, now } from "./db.js";

export interface ModelEntry {
  name: string;
  dir: string;
  modelType: string;
  sha256: string;
  created: number;
}

export interface AdapterEntry {
  id: string;
  tenant: string;
  name: string;
  base: string;
  baseSha256: string;
  /** The model id this adapter was trained from: the base's name, or `${base}:${adapter}`. */
  parent: string;
  dir: string;
  sha256: string;
  method: string;
  task: string;
  labels: string[];
  jobId: string | null;
  created: number;
}

interface AdapterRow {
  id: string; tenant: string; name: string; base: string; base_sha256: string; parent: string; dir: string; sha256: string;
  method: string; task: string; labels: string; job_id: string | null; created: number;
}
interface ModelRow { name: string; dir: string; model_type: string; sha256: string; created: number }

const toModel = (r: ModelRow): ModelEntry => ({ name: r.name, dir: r.dir, modelType: r.model_type, sha256: r.sha256, created: r.created });
const toAdapter = (r: AdapterRow): AdapterEntry => ({
  id: r.id, tenant: r.tenant, name: r.name, base: r.base, baseSha256: r.base_sha256, parent: r.parent, dir: r.dir, sha256: r.sha256,
  method: r.method, task: r.task, labels: JSON.parse(r.labels) as string[], jobId: r.job_id, created: r.created,
});

export const NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

export class Catalog {
  constructor(private readonly db: Database) {}

  /** Registers (or re-registers, after checking its hash) a base model folder under a name. */
  addModel(name: string, dir: string): ModelEntry {
    if (!NAME_PATTERN.test(name)) throw new Error(`registry.addModel: name ${JSON.stringify(name)} must be 1-64 characters of letters, digits, _ . -`);
    const id = baseIdentity(dir);
    this.db.prepare(`INSERT INTO models (name, dir, model_type, sha256, created) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT(name) DO UPDATE SET dir = excluded.dir, model_type = excluded.model_type, sha256 = excluded.sha256`)
      .run(name, dir, id.model_type, id.sha256, now());
    return this.model(name)!;
  }

  model(name: string): ModelEntry | undefined {
    const r = this.db.prepare<ModelRow>("SELECT * FROM models WHERE name = ?").get(name);
    return r === undefined ? undefined : toModel(r);
  }

  models(): ModelEntry[] {
    return this.db.prepare<ModelRow>("SELECT * FROM models ORDER BY created, name").all().map(toModel);
  }

  /**
   * Registers an adapter folder written by saveAdapter for a tenant. Refuses one whose
   * manifest names another base hash than the registered base.
   */
  addAdapter(tenant: string, name: string, base: string, dir: string, { parent, jobId = null }: { parent?: string; jobId?: string | null } = {}): AdapterEntry {
    if (!NAME_PATTERN.test(name)) throw new Error(`registry.addAdapter: name ${JSON.stringify(name)} must be 1-64 characters of letters, digits, _ . -`);
    const model = this.model(base);
    if (model === undefined) throw new Error(`registry.addAdapter: no base model named ${JSON.stringify(base)}`);
    const manifest = readAdapterManifest(dir);
    if (manifest.base.sha256 !== model.sha256) {
      throw new Error(`registry.addAdapter: adapter ${dir} was made for base sha256 ${manifest.base.sha256}, but ${base} has sha256 ${model.sha256}`);
    }
    const id = `adp_${randomBytes(8).toString("hex")}`;
    this.db.prepare(`INSERT INTO adapters (id, tenant, name, base, base_sha256, parent, dir, sha256, method, task, labels, job_id, created)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(id, tenant, name, base, model.sha256, parent ?? base, dir, sha256File(join(dir, "adapter.safetensors")),
        manifest.method, manifest.task, JSON.stringify(manifest.labels), jobId, now());
    return this.adapterById(id)!;
  }

  adapterById(id: string): AdapterEntry | undefined {
    const r = this.db.prepare<AdapterRow>("SELECT * FROM adapters WHERE id = ?").get(id);
    return r === undefined ? undefined : toAdapter(r);
  }

  /** A tenant's adapter by base and name; another tenant's adapter is never returned. */
  adapter(tenant: string, base: string, name: string): AdapterEntry | undefined {
    const r = this.db.prepare<AdapterRow>("SELECT * FROM adapters WHERE tenant = ? AND base = ? AND name = ?").get(tenant, base, name);
    return r === undefined ? undefined : toAdapter(r);
  }

  adapters(tenant: string): AdapterEntry[] {
    return this.db.prepare<AdapterRow>("SELECT * FROM adapters WHERE tenant = ? ORDER BY created, name").all(tenant).map(toAdapter);
  }

  /** Removes an adapter from the catalog (its folder stays on disk); false if there was none. */
  removeAdapter(id: string): boolean {
    return this.db.prepare("DELETE FROM adapters WHERE id = ?").run(id).changes > 0;
  }

  /** The chain of model ids from an adapter back to its root base. */
  lineage(a: AdapterEntry): string[] {
    const chain = [`${a.base}:${a.name}`];
    let parent = a.parent;
    for (let guard = 0; guard < 64; guard++) {
      chain.push(parent);
      const i = parent.indexOf(":");
      if (i < 0) break;
      const up = this.adapter(a.tenant, parent.slice(0, i), parent.slice(i + 1));
      if (up === undefined) break;
      parent = up.parent;
    }
    return chain;
  }

  freshName(tenant: string, base: string, stem: string): string {
    let name = stem;
    for (let i = 2; this.adapter(tenant, base, name) !== undefined; i++) name = `${stem}-${i}`;
    return name;
  }
}
