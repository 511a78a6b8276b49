/** `plinth registry`: move a registry between engines (SQLite into PostgreSQL), and check one against another. */
import { parseArgs } from "node:util";
import { Registry, copyRegistry, redact, registryDigest } from "../registry/index.js";
import { UsageError } from "./args.js";
import { registryArg } from "./serve.js";

export const registryHelp = `plinth registry — move a registry into PostgreSQL (or back), with counts and checksums

Usage: plinth registry migrate --from <sqlite:path | path | postgres://...> --to <postgres://... | path> [--json]
       plinth registry digest --registry <path | postgres://...> [--json]

  migrate   copies every table (models, adapters, files, jobs with their events and checkpoints,
            evaluations, audits, keys, usage, reservations) into an empty registry, in one
            transaction, then prints each table's rows and sha256 on both sides; exits 1 if any
            differ. The destination is created and migrated first; it must be empty. Stop the
            servers writing the source first. Files (uploads, adapters, checkpoints) stay where
            they are: give the replicas a --data-dir that holds them.
  digest    each table's row count and checksum (compare a registry before and after an event)

Examples:
  plinth registry migrate --from sqlite:runs/registry.db --to postgres://plinth@db/plinth
  plinth registry digest --registry postgres://plinth@db/plinth`;

export async function runRegistry(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: { from: { type: "string" }, to: { type: "string" }, registry: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    console.log(registryHelp);
    return;
  }
  const [action, ...extra] = positionals;
  if (action !== "migrate" && action !== "digest") throw new UsageError(`expected migrate or digest, got ${action === undefined ? "nothing" : JSON.stringify(action)}`);
  if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(" ")}`);
  if (action === "digest") {
    const { path, shown } = registryArg(values.registry);
    const reg = await Registry.open(path, { readonly: true });
    try {
      const d = await registryDigest(reg);
      if (values.json) return console.log(JSON.stringify(d, null, 2));
      console.error(`registry ${shown}:`);
      for (const t of d) console.log(`${t.table.padEnd(13)} ${String(t.rows).padStart(8)}  ${t.sha256}`);
    } finally {
      await reg.close();
    }
    return;
  }
  if (values.from === undefined || values.to === undefined) throw new UsageError("migrate needs --from and --to");
  const from = registryArg(values.from), to = registryArg(values.to);
  if (from.path === to.path) throw new UsageError("--from and --to name the same registry");
  const src = await Registry.open(from.path);
  try {
    const dst = await Registry.open(to.path);
    try {
      const report = await copyRegistry(src, dst);
      if (values.json) console.log(JSON.stringify(report, null, 2));
      else {
        console.error(`copied ${redact(from.path)} -> ${redact(to.path)}:`);
        for (const r of report) console.log(`${r.table.padEnd(13)} ${String(r.rows).padStart(8)}  ${r.sha256.slice(0, 16)}  ${r.match ? "match" : `MISMATCH (destination ${r.destination.rows} rows, ${r.destination.sha256.slice(0, 16)})`}`);
      }
      if (report.some((r) => !r.match)) throw new Error("registry migrate: the copy differs from the source (see above)");
    } finally {
      await dst.close();
    }
  } finally {
    await src.close();
  }
}
