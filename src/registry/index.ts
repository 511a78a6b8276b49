/**
 * The registry: base models, tenants' adapters with lineage to their base by content hash,
 * uploaded datasets, fine-tuning jobs with events and checkpoints, evaluations, audits, hashed
 * API keys and metered usage. It lives in one SQLite file (the embedded default: the server and
 * its job workers open the same file) or in PostgreSQL (many replicas over one registry), behind
 * one asynchronous store (store.ts) with the same migrations for both (db.ts).
 *
 *     const reg = await Registry.open("runs/registry.db");          // or "postgres://user@host/plinth"
 *     await reg.catalog.addModel("tiny", "runs/tiny-gpt");
 *     const { secret } = await reg.keys.create("acme", { rpm: 600, tokenQuota: 1_000_000 });
 *     (await reg.keys.verify(secret))?.tenant;   // "acme"
 *     await importAdapter(reg.catalog, { tenant: "acme", dir: "runs/adapters/sentiment-lora", artifacts: openArtifactStore("runs") });   // tiny:sentiment-lora
 *     await reg.tx(async () => { ... });         // several changes, one transaction
 */
import { openDatabase } from "./db.js";
import { Catalog } from "./catalog.js";
import { JobStore } from "./jobs.js";
import { KeyStore } from "./keys.js";
import { ResultStore } from "./results.js";
import type { Store } from "./store.js";

export class Registry {
  readonly catalog: Catalog;
  readonly keys: KeyStore;
  readonly jobs: JobStore;
  readonly results: ResultStore;
  private constructor(readonly db: Store, readonly path: string) {
    this.catalog = new Catalog(db);
    this.keys = new KeyStore(db);
    this.jobs = new JobStore(db);
    this.results = new ResultStore(db);
  }

  /** Opens a registry (a SQLite file path, `sqlite:<path>`, or a `postgres://` URL), migrating it unless read-only. */
  static async open(location: string, options: { readonly?: boolean } = {}): Promise<Registry> {
    return new Registry(await openDatabase(location, options), location);
  }

  /** Runs fn in one transaction: every registry call inside it (from any of the stores) joins it. */
  tx<R>(fn: () => Promise<R>): Promise<R> {
    return this.db.tx(fn);
  }

  /** Which engine holds it. */
  get engine(): "sqlite" | "postgres" {
    return this.db.dialect.name;
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

export { openDatabase, migrate, migrationSql, MIGRATIONS, now } from "./db.js";
export type { Migration } from "./db.js";
export { openStore, parseLocation, redact, isUniqueViolation, RegistryUnavailableError } from "./store.js";
export type { Store, Dialect, DialectName } from "./store.js";
export * from "./catalog.js";
export * from "./adapter_import.js";
export * from "./artifacts.js";
export * from "./jobs.js";
export * from "./keys.js";
export * from "./results.js";
export * from "./copy.js";
