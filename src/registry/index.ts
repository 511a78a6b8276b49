/**
 * The registry: one SQLite file (better-sqlite3, WAL, migrations) holding base models,
 * tenants' adapters with lineage to their base by content hash, uploaded datasets,
 * fine-tuning jobs with events and checkpoints, evaluations, audits, hashed API keys and
 * metered usage. The server and job workers open the same file.
 *
 *     const reg = Registry.open("runs/registry.db");
 *     reg.catalog.addModel("tiny", "runs/tiny-gpt");
 *     const { secret } = reg.keys.create("acme", { rpm: 600, tokenQuota: 1_000_000 });
 *     reg.keys.verify(secret)?.tenant;   // "acme"
 *     importAdapter(reg.catalog, { tenant: "acme", dir: "runs/adapters/sentiment-lora", dataDir: "runs" });   // tiny:sentiment-lora
 */
import { type Database, openDatabase } from "./db.js";
import { Catalog } from "./catalog.js";
import { JobStore } from "./jobs.js";
import { KeyStore } from "./keys.js";
import { ResultStore } from "./results.js";

export class Registry {
  readonly catalog: Catalog;
  readonly keys: KeyStore;
  readonly jobs: JobStore;
  readonly results: ResultStore;
  private constructor(readonly db: Database, readonly path: string) {
    this.catalog = new Catalog(db);
    this.keys = new KeyStore(db);
    this.jobs = new JobStore(db);
    this.results = new ResultStore(db);
  }

  static open(path: string, options: { readonly?: boolean } = {}): Registry {
    return new Registry(openDatabase(path, options), path);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

export { openDatabase, migrate, MIGRATIONS, now } from "./db.js";
export type { Migration } from "./db.js";
export * from "./catalog.js";
export * from "./adapter_import.js";
export * from "./jobs.js";
export * from "./keys.js";
export * from "./results.js";
