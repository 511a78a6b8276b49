/**
 * The audit as people read it: a Markdown table (probe x base/adapters with verdicts) and an
 * SVG grid coloured by verdict, base in the first column, so an inherited row stands out as one
 * colour across every adapter.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeJsonAtomic } from "../io/json.js";
import type { AuditReport, Verdict } from "./audit.js";

const COLOR: Record<Verdict | "pass" | "fail", string> = {
  ok: "#cfe8cf", fixed: "#7fc97f", inherited: "#fdb462", introduced: "#e41a1c", "n/a": "#eeeeee", pass: "#cfe8cf", fail: "#fdb462",
};

const short = (dir: string): string => dir.replace(/\/+$/, "").replace(/.*\//, "");
const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

export function auditTable(r: AuditReport): string {
  const head = ["probe", "blocking", "base", ...r.adapters.map((a) => `${short(a.dir)} (${a.method})`)];
  const lines = [`Audit ${r.suite} on base ${r.base} (sha256 ${r.baseSha256.slice(0, 12)})`, "", `| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`];
  for (const row of r.rows) {
    const base = row.base.pass === null ? "n/a" : row.base.pass ? "pass" : "FAIL";
    lines.push(`| ${row.probe} (${row.kind}) | ${row.blocking ? "yes" : ""} | ${base}: ${row.base.detail} | ${r.adapters.map((a) => {
      const o = row.adapters[a.dir];
      return `${o.verdict}: ${o.detail}`;
    }).join(" | ")} |`);
  }
  lines.push("", r.blockingFailures.length === 0 ? "No blocking probe is inherited or introduced." : `Blocking failures: ${r.blockingFailures.map(([p, d, v]) => `${p} ${v} in ${short(d)}`).join("; ")}`);
  return lines.join("\n") + "\n";
}

export function auditSvg(r: AuditReport): string {
  const cols = ["base", ...r.adapters.map((a) => `${short(a.dir)}`)];
  const cw = 120, rh = 22, left = 220, top = 70;
  const width = left + cols.length * cw + 20, height = top + r.rows.length * rh + 60;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14">${esc(`audit: ${r.suite} — what each adapter inherits from its base`)}</text>`,
  ];
  cols.forEach((c, j) => out.push(`<text x="${left + j * cw + cw / 2}" y="${top - 10}" text-anchor="middle">${esc(c.length > 18 ? c.slice(0, 17) + "…" : c)}</text>`));
  r.rows.forEach((row, i) => {
    const y = top + i * rh;
    out.push(`<text x="${left - 8}" y="${y + 15}" text-anchor="end">${esc(`${row.blocking ? "● " : ""}${row.probe}`)}</text>`);
    const baseKey = row.base.pass === null ? "n/a" : row.base.pass ? "pass" : "fail";
    const cells: [string, string][] = [[baseKey, baseKey], ...r.adapters.map((a) => [row.adapters[a.dir].verdict, row.adapters[a.dir].verdict] as [string, string])];
    cells.forEach(([key, text], j) => {
      out.push(`<rect x="${left + j * cw + 2}" y="${y + 2}" width="${cw - 4}" height="${rh - 4}" fill="${COLOR[key as Verdict]}"/>`);
      out.push(`<text x="${left + j * cw + cw / 2}" y="${y + 15}" text-anchor="middle">${text}</text>`);
    });
  });
  out.push(`<text x="20" y="${height - 20}">● blocking probe · base: pass/fail · adapters: ok, fixed, inherited, introduced</text>`, "</svg>");
  return out.join("\n");
}

export function writeAudit(dir: string, r: AuditReport): { json: string; svg: string; table: string } {
  mkdirSync(dir, { recursive: true });
  const paths = { json: join(dir, "audit.json"), svg: join(dir, "audit.svg"), table: join(dir, "audit.md") };
  writeJsonAtomic(paths.json, r);
  writeFileSync(paths.svg, auditSvg(r));
  writeFileSync(paths.table, auditTable(r));
  return paths;
}
