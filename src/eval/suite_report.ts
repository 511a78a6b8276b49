/**
 * A suite's results as people read them: one Markdown table (task x k x method: accuracy and
 * the paired gap to scratch with its 95% interval; for auto, which methods it picked), a summary
 * of how often the best pretrained method beats scratch, and one SVG of the gap to scratch per
 * task and k (mean and 95% interval; auto's when it ran, else each row's best method).
 *
 *     writeSuite("docs/adapt/suite", result);   // table.md, gap.svg, results.json
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeJsonAtomic } from "../io/json.js";
import { taskKind } from "../tasks/suite.js";
import type { CurveMethod, CurveResult, Gap, Shots } from "./harness.js";
import type { SuiteResult } from "./suite.js";

const pct = (v: number): string => (100 * v).toFixed(1);
const signed = (v: number): string => `${v >= 0 ? "+" : ""}${pct(v)}`;
/** Above or below zero with 95% confidence; an interval of zero width (every seed's gap the same, as with 2 seeds on a coarse test split) is no evidence either way. */
const sure = (g: Gap): "above" | "below" | "" =>
  !(g.accuracy.high > g.accuracy.low) ? "" : g.accuracy.low > 0 ? "above" : g.accuracy.high < 0 ? "below" : "";

/** The gap the plot and summary show for a task and k: auto's if it ran, else the best mean among the pretrained methods. */
export function headlineGap(c: CurveResult, k: Shots): Gap | undefined {
  const gaps = c.gaps.filter((g) => g.k === k && Number.isFinite(g.accuracy.mean));
  return gaps.find((g) => g.method === "auto") ?? gaps.sort((a, b) => b.accuracy.mean - a.accuracy.mean)[0];
}

export function suiteTable(r: SuiteResult): string {
  const lines = [
    `Suite ${r.suite}: ${r.tasks.length} tasks, base ${r.base} (sha256 ${r.baseSha256.slice(0, 12)}), ${r.seeds} seeds, at most ${r.maxTest ?? "all"} test examples per task, the same defaults for every task.`,
    "Accuracy % (mean over seeds); gap = method minus scratch in points, paired by seed, with its 95% interval (▲ above zero, ▼ below).",
    "",
    "| task | kind | k | method | accuracy % | gap to scratch [95% CI] | picked |",
    "|---|---|---|---|---|---|---|",
  ];
  for (const c of r.tasks) {
    for (const k of r.ks) {
      for (const p of c.points.filter((x) => x.k === k)) {
        const g = c.gaps.find((x) => x.method === p.method && x.k === k);
        const gap = g === undefined ? "" : `${signed(g.accuracy.mean)} [${signed(g.accuracy.low)}, ${signed(g.accuracy.high)}]${sure(g) === "above" ? " ▲" : sure(g) === "below" ? " ▼" : ""}`;
        const picked = p.picked === undefined ? "" : Object.entries(p.picked).map(([m, n]) => `${m}×${n}`).join(" ");
        lines.push(`| ${c.task} | ${taskKind(c.task) ?? "file"} | ${k} | ${p.method} | ${pct(p.accuracy.mean)} | ${gap} | ${picked} |`);
      }
    }
  }
  lines.push("", ...suiteSummary(r));
  return lines.join("\n") + "\n";
}

/** Per k: on how many tasks the headline method's gap is surely above zero, and surely below. */
export function suiteSummary(r: SuiteResult): string[] {
  const out = ["| k | headline method | tasks above scratch (95% CI > 0) | tasks below scratch (95% CI < 0) |", "|---|---|---|---|"];
  for (const k of r.ks) {
    const heads = r.tasks.map((c) => headlineGap(c, k)).filter((g): g is Gap => g !== undefined);
    if (heads.length === 0) continue;
    const names = [...new Set(heads.map((g) => g.method))].join(", ");
    out.push(`| ${k} | ${names} | ${heads.filter((g) => sure(g) === "above").length} of ${heads.length} | ${heads.filter((g) => sure(g) === "below").length} of ${heads.length} |`);
  }
  return out;
}

const K_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

/** Gap to scratch per task (rows) and k (markers), with 95% interval bars and the zero line. */
export function suiteGapSvg(r: SuiteResult, { width = 760 } = {}): string {
  const ks = r.ks.filter((k) => r.tasks.some((c) => headlineGap(c, k) !== undefined));
  const rows = r.tasks.map((c) => ({ task: c.task, gaps: ks.map((k) => headlineGap(c, k)) }));
  const rowH = 14 + 10 * ks.length;
  const m = { l: 150, r: 150, t: 40, b: 44 };
  const height = m.t + m.b + rowH * rows.length;
  const vals = rows.flatMap((row) => row.gaps.flatMap((g) => (g === undefined ? [] : [g.accuracy.low, g.accuracy.high, g.accuracy.mean]))).filter(Number.isFinite);
  const lim = Math.max(0.05, ...vals.map(Math.abs));
  const x0 = -Math.ceil(lim * 20) / 20, x1 = -x0;
  const sx = (v: number): number => m.l + ((Math.min(x1, Math.max(x0, v)) - x0) / (x1 - x0)) * (width - m.l - m.r);
  const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${(width - m.r + m.l) / 2}" y="20" text-anchor="middle" font-size="14">${esc(`suite ${r.suite}: gap to scratch, accuracy points (mean, 95% CI)`)}</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const v = x0 + ((x1 - x0) * i) / 4;
    out.push(`<line x1="${sx(v)}" x2="${sx(v)}" y1="${m.t}" y2="${height - m.b}" stroke="#eee"/>`, `<text x="${sx(v)}" y="${height - m.b + 16}" text-anchor="middle">${signed(v)}</text>`);
  }
  out.push(`<line x1="${sx(0)}" x2="${sx(0)}" y1="${m.t}" y2="${height - m.b}" stroke="black"/>`);
  out.push(`<text x="${(width - m.r + m.l) / 2}" y="${height - 8}" text-anchor="middle">accuracy minus scratch (points)</text>`);
  rows.forEach((row, i) => {
    const top = m.t + i * rowH;
    out.push(`<text x="${m.l - 8}" y="${top + rowH / 2 + 4}" text-anchor="end">${esc(row.task)}</text>`);
    if (i > 0) out.push(`<line x1="${m.l}" x2="${width - m.r}" y1="${top}" y2="${top}" stroke="#f4f4f4"/>`);
    row.gaps.forEach((g, j) => {
      if (g === undefined) return;
      const y = top + 12 + j * 10, color = K_COLORS[j % K_COLORS.length];
      if (Number.isFinite(g.accuracy.low)) out.push(`<line x1="${sx(g.accuracy.low).toFixed(1)}" x2="${sx(g.accuracy.high).toFixed(1)}" y1="${y}" y2="${y}" stroke="${color}" stroke-width="2"/>`);
      out.push(`<circle cx="${sx(g.accuracy.mean).toFixed(1)}" cy="${y}" r="3.5" fill="${color}"><title>${esc(`${row.task} k=${g.k} ${g.method}: ${signed(g.accuracy.mean)}`)}</title></circle>`);
    });
  });
  ks.forEach((k, j) => {
    const y = m.t + 10 + j * 18, color = K_COLORS[j % K_COLORS.length];
    out.push(`<circle cx="${width - m.r + 20}" cy="${y}" r="4" fill="${color}"/>`, `<text x="${width - m.r + 30}" y="${y + 4}">k = ${k}</text>`);
  });
  const shown = [...new Set(rows.flatMap((row) => row.gaps.map((g) => g?.method)).filter((x): x is CurveMethod => x !== undefined))];
  out.push(`<text x="${width - m.r + 14}" y="${m.t + 20 + ks.length * 18}">${esc(shown.includes("auto") ? "method: auto" : "best method per row")}</text>`, "</svg>");
  return out.join("\n");
}

export function writeSuite(dir: string, r: SuiteResult): { table: string; svg: string; json: string } {
  mkdirSync(dir, { recursive: true });
  const paths = { table: join(dir, "table.md"), svg: join(dir, "gap.svg"), json: join(dir, "results.json") };
  writeJsonAtomic(paths.json, r);
  writeFileSync(paths.svg, suiteGapSvg(r));
  writeFileSync(paths.table, suiteTable(r));
  return paths;
}
