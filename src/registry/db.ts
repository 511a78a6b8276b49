/**
 * The registry's schema: one ordered list of migrations for both engines, recorded in a
 * `migrations` table, each applied once; the ones a store lacks are applied in one transaction. Migrations are written in
 * SQLite's DDL; the PostgreSQL dialect maps its types (store.ts), and a migration that cannot be
 * said the same way in both carries one text per engine. On PostgreSQL the whole run holds an
 * advisory lock, so replicas starting together apply each migration once.
 */
import { type Dialect, type Store, openStore } from "./store.js";

export interface Migration {
  version: number;
  name: string;
  /** SQLite DDL (mapped for PostgreSQL), or one text per engine. */
  sql: string | { sqlite: string; postgres: string };
}

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: "catalogue, tenancy, jobs, results",
    sql: `
      CREATE TABLE models (
        name TEXT PRIMARY KEY, dir TEXT NOT NULL, model_type TEXT NOT NULL, sha256 TEXT NOT NULL, created INTEGER NOT NULL);
      CREATE TABLE adapters (
        id TEXT PRIMARY KEY, tenant TEXT NOT NULL, name TEXT NOT NULL,
        base TEXT NOT NULL REFERENCES models(name), base_sha256 TEXT NOT NULL, parent TEXT NOT NULL,
        dir TEXT NOT NULL, sha256 TEXT NOT NULL, method TEXT NOT NULL, task TEXT NOT NULL, labels TEXT NOT NULL,
        job_id TEXT, created INTEGER NOT NULL, UNIQUE (tenant, name));
      CREATE TABLE files (
        id TEXT PRIMARY KEY, tenant TEXT NOT NULL, filename TEXT NOT NULL, purpose TEXT NOT NULL, bytes INTEGER NOT NULL,
        path TEXT NOT NULL, rows INTEGER NOT NULL, labels TEXT NOT NULL, sha256 TEXT NOT NULL, created INTEGER NOT NULL);
      CREATE TABLE jobs (
        id TEXT PRIMARY KEY, tenant TEXT NOT NULL, key_id TEXT NOT NULL, model TEXT NOT NULL REFERENCES models(name),
        training_file TEXT NOT NULL REFERENCES files(id), method TEXT NOT NULL, hyperparameters TEXT NOT NULL,
        suffix TEXT, seed INTEGER NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
        worker_pid INTEGER, heartbeat INTEGER, fine_tuned_model TEXT, error TEXT, trained_tokens INTEGER,
        created INTEGER NOT NULL, started INTEGER, finished INTEGER);
      CREATE INDEX jobs_by_status ON jobs(status);
      CREATE TABLE job_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL REFERENCES jobs(id), created INTEGER NOT NULL,
        level TEXT NOT NULL, type TEXT NOT NULL, message TEXT NOT NULL, data TEXT);
      CREATE INDEX job_events_by_job ON job_events(job_id, id);
      CREATE TABLE checkpoints (
        id TEXT PRIMARY KEY, job_id TEXT NOT NULL REFERENCES jobs(id), step INTEGER NOT NULL, metrics TEXT NOT NULL,
        model TEXT NOT NULL, created INTEGER NOT NULL);
      CREATE TABLE evaluations (
        id INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, model TEXT NOT NULL, task TEXT NOT NULL,
        metrics TEXT NOT NULL, created INTEGER NOT NULL);
      CREATE TABLE audits (
        id INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, model TEXT NOT NULL, name TEXT NOT NULL,
        passed INTEGER NOT NULL, result TEXT NOT NULL, created INTEGER NOT NULL);
      CREATE TABLE api_keys (
        id TEXT PRIMARY KEY, tenant TEXT NOT NULL, name TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL,
        rpm INTEGER, token_quota INTEGER, created INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);
      CREATE TABLE usage (
        id INTEGER PRIMARY KEY AUTOINCREMENT, key_id TEXT NOT NULL, tenant TEXT NOT NULL, kind TEXT NOT NULL,
        model TEXT NOT NULL, prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0,
        training_tokens INTEGER NOT NULL DEFAULT 0, compute_seconds REAL NOT NULL DEFAULT 0, created INTEGER NOT NULL);
      CREATE INDEX usage_by_key ON usage(key_id, created);
    `,
  },
  {
    version: 2,
    name: "jobs: probe suite to audit the trained adapter with",
    sql: "ALTER TABLE jobs ADD COLUMN audit_suite TEXT;",
  },
  {
    version: 3,
    name: "keys: token reservations (quotas are reserved at admission and settled as tokens are delivered)",
    sql: `
      CREATE TABLE reservations (
        id TEXT PRIMARY KEY, key_id TEXT NOT NULL, usage_id INTEGER, job_id TEXT, holder INTEGER,
        held INTEGER NOT NULL, created INTEGER NOT NULL);
      CREATE INDEX reservations_by_key ON reservations(key_id);
    `,
  },
  {
    version: 4,
    name: "jobs: a validation file (held-out data of the caller's, for generative jobs)",
    sql: "ALTER TABLE jobs ADD COLUMN validation_file TEXT REFERENCES files(id);",
  },
  {
    version: 5,
    name: "jobs: an explicit insertion order (seq) to page by, on any engine",
    sql: {
      // SQLite's rowid is that order: copy it, and keep copying it for new jobs.
      sqlite: `
        ALTER TABLE jobs ADD COLUMN seq INTEGER;
        UPDATE jobs SET seq = rowid;
        CREATE TRIGGER jobs_seq AFTER INSERT ON jobs WHEN NEW.seq IS NULL BEGIN UPDATE jobs SET seq = NEW.rowid WHERE rowid = NEW.rowid; END;
        CREATE INDEX jobs_by_tenant_seq ON jobs(tenant, seq);
      `,
      postgres: `
        ALTER TABLE jobs ADD COLUMN seq BIGINT GENERATED BY DEFAULT AS IDENTITY;
        CREATE INDEX jobs_by_tenant_seq ON jobs(tenant, seq);
      `,
    },
  },
  {
    version: 6,
    name: "jobs: the machine whose replica claimed the job (its worker's pid is meaningful there only)",
    sql: "ALTER TABLE jobs ADD COLUMN worker_host TEXT;",
  },
  {
    version: 7,
    name: "keys: requests per minute counted in the registry (one limit across every replica)",
    sql: `
      CREATE TABLE rate_hits (id INTEGER PRIMARY KEY AUTOINCREMENT, key_id TEXT NOT NULL, at INTEGER NOT NULL);
      CREATE INDEX rate_hits_by_key ON rate_hits(key_id, at);
    `,
  },
];

/** A migration's text for an engine. */
export function migrationSql(m: Migration, dialect: Dialect): string {
  if (typeof m.sql !== "string") return m.sql[dialect.name];
  return dialect.ddl(m.sql);
}

/** Opens (creating if needed) a registry store and brings its schema up to date. */
export async function openDatabase(location: string, { readonly = false }: { readonly?: boolean } = {}): Promise<Store> {
  const store = await openStore(location, { readonly });
  if (readonly) return store;
  try {
    await migrate(store);
  } catch (e) {
    await store.close();
    throw e;
  }
  return store;
}

/** Applies the migrations a store has not had yet; returns their versions. */
export async function migrate(store: Store, migrations: Migration[] = MIGRATIONS): Promise<number[]> {
  const pgLock = store.dialect.name === "postgres";
  return store.tx(async () => {
    // Replicas starting together: one migrates, the others wait here and then find it done.
    if (pgLock) await store.get("SELECT pg_advisory_xact_lock(?) AS locked", [MIGRATION_LOCK]);
    await store.exec(store.dialect.ddl("CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied INTEGER NOT NULL)"));
    const done = new Set((await store.all<{ version: number }>("SELECT version FROM migrations")).map((r) => r.version));
    const applied: number[] = [];
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (done.has(m.version)) continue;
      await store.exec(migrationSql(m, store.dialect));
      await store.run("INSERT INTO migrations (version, name, applied) VALUES (?, ?, ?)", [m.version, m.name, now()]);
      applied.push(m.version);
    }
    return applied;
  });
}

/** The advisory lock key migrations hold on PostgreSQL ("plinth" in ASCII). */
const MIGRATION_LOCK = 0x706c696e7468;

/** Unix seconds (OpenAI's created_at unit). */
export const now = (): number => Math.floor(Date.now() / 1000);
