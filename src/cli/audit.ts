/** `plinth audit`: run a probe suite on a base and every adapter derived from it. */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { readAdapterManifest } from "../adapt/artifact.js";
import { runAudit } from "../eval/audit.js";
import { auditTable, writeAudit } from "../eval/audit_report.js";
import { readProbeSuite } from "../eval/probes.js";
import { UsageError } from "./args.js";

export const auditHelp = `plinth audit — which defects of a base do its adapters inherit, fix or introduce?

Usage: plinth audit --base <dir> --probes <file> [--adapters a,b,...] [--adapters-dir runs/adapters] [--out dir]

  --probes        probe suite: JSON {"name", "task", "probes": [...]} or JSONL, kinds label, invariance, avoid
                  (see probes/sentiment.json)
  --adapters      adapter folders to audit beside the base
  --adapters-dir  audit every adapter in this folder (each subfolder with an adapter.json)
  --out           where audit.md, audit.svg and audit.json go (default runs/audit/<suite>)

Exits with status 1 when an adapter inherits or introduces a failure of a probe marked "blocking".

Example:
  plinth audit --base runs/default --probes probes/sentiment.json --adapters-dir runs/adapters`;

export function runAuditCommand(argv: string[]): void {
  const { values } = parseArgs({
    args: argv,
    options: { base: { type: "string" }, probes: { type: "string" }, adapters: { type: "string" }, "adapters-dir": { type: "string" }, out: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) return void console.log(auditHelp);
  if (values.base === undefined) throw new UsageError("--base is required");
  if (values.probes === undefined) throw new UsageError("--probes is required (a probe suite file)");
  const suite = readProbeSuite(values.probes);
  const adapters = (values.adapters ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (values["adapters-dir"] !== undefined) {
    const dir = values["adapters-dir"];
    if (!existsSync(dir)) throw new UsageError(`--adapters-dir ${dir} does not exist`);
    for (const name of readdirSync(dir).sort()) {
      const sub = join(dir, name);
      if (!existsSync(join(sub, "adapter.json"))) continue;
      readAdapterManifest(sub);
      adapters.push(sub);
    }
  }
  const report = runAudit({ base: values.base, adapters, suite });
  const paths = writeAudit(values.out ?? join("runs", "audit", suite.name), report);
  console.log(auditTable(report));
  console.log(`wrote ${paths.table}, ${paths.svg} and ${paths.json}`);
  if (report.blockingFailures.length > 0) {
    throw new Error(`${report.blockingFailures.length} blocking probe failure(s): ${report.blockingFailures.map(([p, d, v]) => `${p} ${v} in ${d}`).join("; ")}`);
  }
}
