/** Minimal SVG line charts (loss curves), with axes, ticks and a legend. */
export interface Series {
  name: string;
  points: [number, number][];
  color: string;
}

export function lineChartSvg(series: Series[], { title = "", xLabel = "", yLabel = "", width = 640, height = 360, xFromZero = true } = {}): string {
  const pts = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const m = { l: 60, r: 20, t: 36, b: 44 };
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  let x0 = xFromZero ? Math.min(...xs, 0) : Math.min(...xs), x1 = Math.max(...xs, xFromZero ? 1 : -Infinity);
  if (!Number.isFinite(x0) || !Number.isFinite(x1)) [x0, x1] = [0, 1];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (!Number.isFinite(y0)) [y0, y1] = [0, 1];
  if (y0 === y1) [y0, y1] = [y0 - 1, y1 + 1];
  const pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const sx = (x: number) => m.l + ((x - x0) / (x1 - x0)) * (width - m.l - m.r);
  const sy = (y: number) => height - m.b - ((y - y0) / (y1 - y0)) * (height - m.t - m.b);
  const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const yv = y0 + ((y1 - y0) * i) / 5, xv = x0 + ((x1 - x0) * i) / 5;
    parts.push(`<line x1="${m.l}" x2="${width - m.r}" y1="${sy(yv)}" y2="${sy(yv)}" stroke="#eee"/>`);
    parts.push(`<text x="${m.l - 6}" y="${sy(yv) + 4}" text-anchor="end">${yv.toPrecision(3)}</text>`);
    parts.push(`<text x="${sx(xv)}" y="${height - m.b + 16}" text-anchor="middle">${tick(xv)}</text>`);
  }
  parts.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${height - m.b}" stroke="black"/>`);
  parts.push(`<line x1="${m.l}" x2="${width - m.r}" y1="${height - m.b}" y2="${height - m.b}" stroke="black"/>`);
  parts.push(`<text x="${width / 2}" y="${height - 8}" text-anchor="middle">${esc(xLabel)}</text>`);
  parts.push(`<text x="14" y="${height / 2}" text-anchor="middle" transform="rotate(-90 14 ${height / 2})">${esc(yLabel)}</text>`);
  const legendX = width - m.r - 24 - 6.5 * Math.max(...series.map((s) => s.name.length));
  series.forEach((s, i) => {
    const ok = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (ok.length > 0) {
      const d = ok.map(([x, y], j) => `${j === 0 ? "M" : "L"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ");
      parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.5"/>`);
      if (ok.length < 40) for (const [x, y] of ok) parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${s.color}"/>`);
    }
    parts.push(`<rect x="${legendX}" y="${m.t + 4 + i * 18}" width="12" height="3" fill="${s.color}"/>`);
    parts.push(`<text x="${legendX + 18}" y="${m.t + 9 + i * 18}">${esc(s.name)}</text>`);
  });
  parts.push("</svg>");
  return parts.join("\n");
}

/** Axis labels: 1.26M, 350k, 0.5, 3.81 */
function tick(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`;
  if (a >= 1e4) return `${Number((v / 1e3).toPrecision(3))}k`;
  return String(Number(v.toPrecision(3)));
}
