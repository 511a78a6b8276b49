/**
 * Moving a registry from one engine to another (an embedded SQLite file into PostgreSQL, for a
 * grid): every table copied in foreign-key order in one transaction on the destination, which
 * must be empty and at the same migrations; then each table's row count and a checksum (sha256
 * over its rows in key order, columns in name order) compared on both sides. Identity counters
 * on PostgreSQL are moved past the copied ids.
 *
 *     const report = await copyRegistry(await Registry.open("runs/registry.db"), await Registry.open("postgres://..."));
 *     // [{ table: "models", rows: 2, sha256: "…", match: true }, ...]
 */
import { createHash } from "node:crypto";
import type { Registry } from "./index.js";

/** The registry's tables in foreign-key order, with the column each is ordered by and its identity column (if any). */
export const REGISTRY_TABLES: readonly { name: string; key: string; identity?: string }[] = [
  { name: "models", key: "name" },
  { name: "api_keys", key: "id" },
  { name: "files", key: "id" },
  { name: "jobs", key: "id", identity: "seq" },
  { name: "adapters", key: "id" },
  { name: "job_events", key: "id", identity: "id" },
  { name: "checkpoints", key: "id" },
  { name: "evaluations", key: "id", identity: "id" },
  { name: "audits", key: "id", identity: "id" },
  { name: "usage", key: "id", identity: "id" },
  { name: "reservations", key: "id" },
  { name: "rate_hits", key: "id", identity: "id" },
];

export interface TableDigest { table: string; rows: number; sha256: string }
export interface CopyReport extends TableDigest { match: boolean; destination: TableDigest }

/** A table's row count and checksum: the same rows give the same digest on either engine. */
export async function tableDigest(reg: Registry, table: string, key: string): Promise<TableDigest> {
  // Ordered here, not by the engine: text collations differ between engines and locales.
  const rows = (await reg.db.all<Record<string, unknown>>(`SELECT * FROM ${table}`))
    .sort((x, y) => (String(x[key]) < String(y[key]) ? -1 : String(x[key]) > String(y[key]) ? 1 : 0));
  const h = createHash("sha256");
  for (const r of rows) {
    h.update(JSON.stringify(Object.keys(r).sort().map((k) => [k, r[k] ?? null])));
    h.update("\n");
  }
  return { table, rows: rows.length, sha256: h.digest("hex") };
}

/** Digests of every registry table. */
export async function registryDigest(reg: Registry): Promise<TableDigest[]> {
  const out: TableDigest[] = [];
  for (const t of REGISTRY_TABLES) out.push(await tableDigest(reg, t.name, t.key));
  return out;
}

async function versions(reg: Registry): Promise<number[]> {
  return (await reg.db.all<{ version: number }>("SELECT version FROM migrations ORDER BY version")).map((r) => r.version);
}

/** Copies every row of `from` into the empty registry `to`, in one transaction, and checks counts and checksums. */
export async function copyRegistry(from: Registry, to: Registry, { batch = 500 }: { batch?: number } = {}): Promise<CopyReport[]> {
  const [vf, vt] = [await versions(from), await versions(to)];
  if (vf.join(",") !== vt.join(",")) throw new Error(`registry copy: the source has migrations ${vf.join(",")} and the destination ${vt.join(",")}; open both with this version of plinth first`);
  for (const t of REGISTRY_TABLES) {
    const n = (await to.db.get<{ n: number }>(`SELECT COUNT(*) AS n FROM ${t.name}`))!.n;
    if (n > 0) throw new Error(`registry copy: the destination is not empty (${t.name} has ${n} rows); copy into a new, empty registry`);
  }
  await to.tx(async () => {
    for (const t of REGISTRY_TABLES) {
      const rows = await from.db.all<Record<string, unknown>>(`SELECT * FROM ${t.name} ORDER BY ${t.key}`);
      if (rows.length === 0) continue;
      const cols = Object.keys(rows[0]);
      for (let i = 0; i < rows.length; i += batch) {
        const chunk = rows.slice(i, i + batch);
        const values = chunk.map(() => `(${cols.map(() => "?").join(", ")})`).join(", ");
        await to.db.run(`INSERT INTO ${t.name} (${cols.join(", ")}) VALUES ${values}`, chunk.flatMap((r) => cols.map((c) => r[c] ?? null)));
      }
      if (t.identity !== undefined && to.engine === "postgres") {
        await to.db.get(`SELECT setval(pg_get_serial_sequence('${t.name}', '${t.identity}'), (SELECT MAX(${t.identity}) FROM ${t.name})) AS v`);
      }
    }
  });
  const out: CopyReport[] = [];
  for (const t of REGISTRY_TABLES) {
    const a = await tableDigest(from, t.name, t.key), b = await tableDigest(to, t.name, t.key);
    out.push({ ...a, match: a.rows === b.rows && a.sha256 === b.sha256, destination: b });
  }
  return out;
}
