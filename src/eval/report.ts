/**
 * Results of the harness as people read them: a Markdown table, an SVG k-shot chart (mean
 * accuracy per method with 95% confidence bars, the majority-class line), and the JSON the
 * registry stores.
 *
 *     writeCurve("runs/eval/sentiment", curve);   // curve.json, curve.svg, table.md
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeJsonAtomic } from "../io/json.js";
import type { CurveResult, Shots } from "./harness.js";

const COLORS: Record<string, string> = {
  "zero-shot": "#7f7f7f", "few-shot": "#bcbd22", probe: "#1f77b4", head: "#17becf", lora: "#2ca02c", full: "#d62728", scratch: "#000000",
};

const pct = (v: number): string => (100 * v).toFixed(1);
/** A Student-t interval over 3 seeds can reach past 0 or 100%; an accuracy cannot, so the display is clipped. */
const clip = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));
const ci = (i: { mean: number; low: number; high: number }, lo = 0, hi = 1): string => `${pct(i.mean)} [${pct(clip(i.low, lo, hi))}, ${pct(clip(i.high, lo, hi))}]`;

/** The curve as a Markdown table: accuracy (95% CI) per method and k, then the paired gaps to scratch. */
export function curveTable(c: CurveResult): string {
  const ks = [...new Set(c.points.map((p) => p.k))];
  const methods = [...new Set(c.points.map((p) => p.method))];
  const lines = [
    `Task ${c.task} (${c.labels.join(" / ")}), ${c.testExamples} test examples, majority class ${pct(c.majority)}%; base ${c.base} (sha256 ${c.baseSha256.slice(0, 12)}).`,
    "",
    `| accuracy % (95% CI) | ${ks.map((k) => `k=${k}`).join(" | ")} |`,
    `|---|${ks.map(() => "---").join("|")}|`,
  ];
  for (const m of methods) {
    lines.push(`| ${m} | ${ks.map((k) => {
      const p = c.points.find((x) => x.method === m && x.k === k);
      return p === undefined ? "" : p.n > 1 ? ci(p.accuracy) : pct(p.accuracy.mean);
    }).join(" | ")} |`);
  }
  if (c.gaps.length > 0) {
    lines.push("", `| gap to scratch, points (paired by seed) | ${ks.map((k) => `k=${k}`).join(" | ")} |`, `|---|${ks.map(() => "---").join("|")}|`);
    for (const m of [...new Set(c.gaps.map((g) => g.method))]) {
      lines.push(`| ${m} | ${ks.map((k) => {
        const g = c.gaps.find((x) => x.method === m && x.k === k);
        return g === undefined ? "" : `${g.accuracy.mean >= 0 ? "+" : ""}${ci(g.accuracy, -1, 1)}`;
      }).join(" | ")} |`);
    }
  }
  return lines.join("\n") + "\n";
}

/** An SVG chart: k on an evenly spaced categorical axis (0, 1, 2, 4, ... all), accuracy with CI bars. */
export function curveSvg(c: CurveResult, { width = 720, height = 400 } = {}): string {
  const ks: Shots[] = [...new Set(c.points.map((p) => p.k))].sort((a, b) => (a === "all" ? 1 : b === "all" ? -1 : a - b));
  const methods = [...new Set(c.points.map((p) => p.method))];
  const m = { l: 56, r: 120, t: 36, b: 44 };
  const vals = c.points.flatMap((p) => [p.accuracy.low, p.accuracy.high]).concat(c.majority).filter(Number.isFinite);
  let y0 = Math.max(0, Math.floor(Math.min(...vals) * 20) / 20), y1 = Math.min(1, Math.ceil(Math.max(...vals) * 20) / 20);
  if (y1 - y0 < 0.1) [y0, y1] = [Math.max(0, y0 - 0.05), Math.min(1, y1 + 0.05)];
  const sx = (k: Shots): number => m.l + ((ks.indexOf(k) + 0.5) / ks.length) * (width - m.l - m.r);
  const sy = (v: number): number => height - m.b - ((v - y0) / (y1 - y0)) * (height - m.t - m.b);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${(width - m.r + m.l) / 2}" y="20" text-anchor="middle" font-size="14">${esc(`${c.task}: accuracy vs labels per class (mean, 95% CI)`)}</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const v = y0 + ((y1 - y0) * i) / 5;
    out.push(`<line x1="${m.l}" x2="${width - m.r}" y1="${sy(v)}" y2="${sy(v)}" stroke="#eee"/>`, `<text x="${m.l - 6}" y="${sy(v) + 4}" text-anchor="end">${pct(v)}</text>`);
  }
  for (const k of ks) out.push(`<text x="${sx(k)}" y="${height - m.b + 16}" text-anchor="middle">${k}</text>`);
  out.push(
    `<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${height - m.b}" stroke="black"/>`,
    `<line x1="${m.l}" x2="${width - m.r}" y1="${height - m.b}" y2="${height - m.b}" stroke="black"/>`,
    `<text x="${(width - m.r + m.l) / 2}" y="${height - 8}" text-anchor="middle">labeled examples per class (k)</text>`,
    `<text x="14" y="${height / 2}" text-anchor="middle" transform="rotate(-90 14 ${height / 2})">test accuracy %</text>`,
    `<line x1="${m.l}" x2="${width - m.r}" y1="${sy(c.majority)}" y2="${sy(c.majority)}" stroke="#999" stroke-dasharray="4 4"/>`,
  );
  methods.forEach((method, i) => {
    const color = COLORS[method] ?? "#9467bd";
    const pts = ks.flatMap((k) => c.points.filter((p) => p.method === method && p.k === k));
    const jitter = (i - (methods.length - 1) / 2) * 3;
    const xy = pts.map((p) => [sx(p.k) + jitter, sy(p.accuracy.mean)] as const);
    if (xy.length > 1) out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${xy.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ")}"/>`);
    pts.forEach((p, j) => {
      const [x, y] = xy[j];
      if (p.n > 1 && Number.isFinite(p.accuracy.low)) out.push(`<line x1="${x}" x2="${x}" y1="${sy(clip(p.accuracy.low, y0, y1))}" y2="${sy(clip(p.accuracy.high, y0, y1))}" stroke="${color}"/>`);
      out.push(`<circle cx="${x}" cy="${y}" r="3" fill="${color}"/>`);
    });
    const ly = m.t + 10 + i * 18;
    out.push(`<line x1="${width - m.r + 12}" x2="${width - m.r + 32}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"/>`, `<text x="${width - m.r + 38}" y="${ly + 4}">${esc(method)}</text>`);
  });
  const ly = m.t + 10 + methods.length * 18;
  out.push(`<line x1="${width - m.r + 12}" x2="${width - m.r + 32}" y1="${ly}" y2="${ly}" stroke="#999" stroke-dasharray="4 4"/>`, `<text x="${width - m.r + 38}" y="${ly + 4}">majority</text>`, "</svg>");
  return out.join("\n");
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;");
}

export function writeCurve(dir: string, c: CurveResult): { json: string; svg: string; table: string } {
  mkdirSync(dir, { recursive: true });
  const paths = { json: join(dir, "curve.json"), svg: join(dir, "curve.svg"), table: join(dir, "table.md") };
  writeJsonAtomic(paths.json, c);
  writeFileSync(paths.svg, curveSvg(c));
  writeFileSync(paths.table, curveTable(c));
  return paths;
}
