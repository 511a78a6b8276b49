/**
 * Models and adapters. A base model is a folder (config.json + model.safetensors) named once
 * and identified by the sha256 of its weights; an adapter belongs to one tenant, is bound to
 * its base by that hash, and records its parent (the base, or the adapter it was trained
 * from) so lineage can be walked back to the root base.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { baseIdentity, readAdapterManifest, sha256File } from "../adapt/artifact.js";
import { now } from "./db.js";
import type { Store } from "./store.js";

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
  constructor(private readonly db: Store) {}

  /** Registers (or re-registers, after checking its hash) a base model folder under a name. */
  async addModel(name: string, dir: string): Promise<ModelEntry> {
    if (!NAME_PATTERN.test(name)) throw new Error(`registry.addModel: name ${JSON.stringify(name)} must be 1-64 characters of letters, digits, _ . -`);
    const id = baseIdentity(dir);
    await this.db.run(`INSERT INTO models (name, dir, model_type, sha256, created) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT(name) DO UPDATE SET dir = excluded.dir, model_type = excluded.model_type, sha256 = excluded.sha256`,
      [name, dir, id.model_type, id.sha256, now()]);
    return (await this.model(name))!;
  }

  async model(name: string): Promise<ModelEntry | undefined> {
    const r = await this.db.get<ModelRow>("SELECT * FROM models WHERE name = ?", [name]);
    return r === undefined ? undefined : toModel(r);
  }

  async models(): Promise<ModelEntry[]> {
    return (await this.db.all<ModelRow>("SELECT * FROM models ORDER BY created, name")).map(toModel);
  }

  /**
   * Registers an adapter folder written by saveAdapter for a tenant. Refuses one whose
   * manifest names another base hash than the registered base.
   */
  async addAdapter(tenant: string, name: string, base: string, dir: string, { parent, jobId = null }: { parent?: string; jobId?: string | null } = {}): Promise<AdapterEntry> {
    if (!NAME_PATTERN.test(name)) throw new Error(`registry.addAdapter: name ${JSON.stringify(name)} must be 1-64 characters of letters, digits, _ . -`);
    const model = await this.model(base);
    if (model === undefined) throw new Error(`registry.addAdapter: no base model named ${JSON.stringify(base)}`);
    const manifest = readAdapterManifest(dir);
    if (manifest.base.sha256 !== model.sha256) {
      throw new Error(`registry.addAdapter: adapter ${dir} was made for base sha256 ${manifest.base.sha256}, but ${base} has sha256 ${model.sha256}`);
    }
    const id = `adp_${randomBytes(8).toString("hex")}`;
    await this.db.run(`INSERT INTO adapters (id, tenant, name, base, base_sha256, parent, dir, sha256, method, task, labels, job_id, created)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [id, tenant, name, base, model.sha256, parent ?? base, dir, sha256File(join(dir, "adapter.safetensors")),
        manifest.method, manifest.task, JSON.stringify(manifest.labels), jobId, now()]);
    return (await this.adapterById(id))!;
  }

  async adapterById(id: string): Promise<AdapterEntry | undefined> {
    const r = await this.db.get<AdapterRow>("SELECT * FROM adapters WHERE id = ?", [id]);
    return r === undefined ? undefined : toAdapter(r);
  }

  /** A tenant's adapter by base and name; another tenant's adapter is never returned. */
  async adapter(tenant: string, base: string, name: string): Promise<AdapterEntry | undefined> {
    const r = await this.db.get<AdapterRow>("SELECT * FROM adapters WHERE tenant = ? AND base = ? AND name = ?", [tenant, base, name]);
    return r === undefined ? undefined : toAdapter(r);
  }

  async adapters(tenant: string): Promise<AdapterEntry[]> {
    return (await this.db.all<AdapterRow>("SELECT * FROM adapters WHERE tenant = ? ORDER BY created, name", [tenant])).map(toAdapter);
  }

  /** Removes an adapter from the catalog (its folder stays on disk); false if there was none. */
  async removeAdapter(id: string): Promise<boolean> {
    return (await this.db.run("DELETE FROM adapters WHERE id = ?", [id])) > 0;
  }

  /** The chain of model ids from an adapter back to its root base. */
  async lineage(a: AdapterEntry): Promise<string[]> {
    const chain = [`${a.base}:${a.name}`];
    let parent = a.parent;
    for (let guard = 0; guard < 64; guard++) {
      chain.push(parent);
      const i = parent.indexOf(":");
      if (i < 0) break;
      const up = await this.adapter(a.tenant, parent.slice(0, i), parent.slice(i + 1));
      if (up === undefined) break;
      parent = up.parent;
    }
    return chain;
  }

  async freshName(tenant: string, base: string, stem: string): Promise<string> {
    let name = stem;
    for (let i = 2; (await this.adapter(tenant, base, name)) !== undefined; i++) name = `${stem}-${i}`;
    return name;
  }
}
