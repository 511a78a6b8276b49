/**
 * Scaling-law fit L(N) = a · N^(−α) + c over (parameters, loss) points, and its chart.
 * For each candidate irreducible loss c on a fine grid below min(L), log(L − c) is linear
 * in log N, so a and α come from least squares; the c with the smallest squared error in
 * L itself wins. Robust with 4+ points and needs no starting guess.
 */
import { lineChartSvg } from "./plot.js";

export interface ScalingFit {
  a: number;
  alpha: number;
  c: number;
  rmse: number;
}

export function fitPowerLaw(points: { n: number; loss: number }[]): ScalingFit {
  if (points.length < 3) throw new RangeError(`fitPowerLaw: need at least 3 points, got ${points.length}`);
  for (const p of points) {
    if (!(p.n > 0 && Number.isFinite(p.loss))) throw new RangeError(`fitPowerLaw: invalid point n=${p.n} loss=${p.loss}`);
  }
  const minL = Math.min(...points.map((p) => p.loss));
  let best: ScalingFit = { a: NaN, alpha: NaN, c: NaN, rmse: Infinity };
  const steps = 2000;
  for (let i = 0; i < steps; i++) {
    const c = (minL * i) / steps;
    const xs = points.map((p) => Math.log(p.n));
    const ys = points.map((p) => Math.log(p.loss - c));
    const mx = xs.reduce((s, v) => s + v, 0) / xs.length, my = ys.reduce((s, v) => s + v, 0) / ys.length;
    let sxy = 0, sxx = 0;
    for (let j = 0; j < xs.length; j++) {
      sxy += (xs[j] - mx) * (ys[j] - my);
      sxx += (xs[j] - mx) ** 2;
    }
    if (sxx === 0) throw new RangeError("fitPowerLaw: every point has the same parameter count");
    const slope = sxy / sxx;
    const alpha = -slope, a = Math.exp(my - slope * mx);
    const rmse = Math.sqrt(points.reduce((s, p) => s + (a * p.n ** -alpha + c - p.loss) ** 2, 0) / points.length);
    if (rmse < best.rmse) best = { a, alpha, c, rmse };
  }
  return best;
}

export function scalingChartSvg(points: { n: number; loss: number; name: string }[], fit: ScalingFit): string {
  const lo = Math.log10(Math.min(...points.map((p) => p.n))), hi = Math.log10(Math.max(...points.map((p) => p.n)));
  const curve: [number, number][] = Array.from({ length: 50 }, (_, i) => {
    const x = lo - 0.1 + ((hi - lo + 0.2) * i) / 49;
    return [x, fit.a * (10 ** x) ** -fit.alpha + fit.c];
  });
  return lineChartSvg(
    [
      { name: `fit: ${fit.a.toPrecision(3)}·N^-${fit.alpha.toFixed(3)} + ${fit.c.toFixed(3)}`, color: "#d62728", points: curve },
      { name: "measured", color: "#1f77b4", points: points.map((p) => [Math.log10(p.n), p.loss]) },
    ],
    { title: "Validation loss vs non-embedding parameters", xLabel: "log10 N (non-embedding parameters)", yLabel: "validation loss (nats/token)", xFromZero: false },
  );
}
