/**
 * The registry's SQLite file: WAL mode (readers never block the writer; a worker process and
 * the server write the same file), a busy timeout for that sharing, foreign keys, and an
 * ordered list of migrations recorded in a `migrations` table, each applied once in its own
 * transaction.
 */
import DatabaseCtor, { type Database } from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";

export type { Database };

export interface Migration {
  version: number;
  name: string;
  sql: string;
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
];

/** Opens (creating if needed) a registry file and brings its schema up to date. */
export function openDatabase(path: string, { readonly = false } = {}): Database {
  if (!readonly) mkdirSync(dirname(path), { recursive: true });
  const db = new DatabaseCtor(path, { readonly, fileMustExist: readonly, timeout: 10_000 });
  if (readonly) return db;
  db.pragma("journal_mode = WAL");
  // NORMAL is durable against a killed process (the WAL is in the OS's hands once written);
  // only a power cut can lose the last transactions.
  db.pragma("synchronous = NORMAL");
  db.pragma("foreign_keys = ON");
  migrate(db);
  return db;
}

export function migrate(db: Database, migrations: Migration[] = MIGRATIONS): number[] {
  db.exec("CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied INTEGER NOT NULL)");
  const done = new Set(db.prepare<{ version: number }>("SELECT version FROM migrations").all().map((r) => r.version));
  const applied: number[] = [];
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    if (done.has(m.version)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.prepare("INSERT INTO migrations (version, name, applied) VALUES (?, ?, ?)").run(m.version, m.name, now());
    })();
    applied.push(m.version);
  }
  return applied;
}

/** Unix seconds (OpenAI's created_at unit). */
export const now = (): number => Math.floor(Date.now() / 1000);
