/**
 * Classification metrics and intervals: accuracy, macro-F1, expected calibration error,
 * a mean with its Student-t confidence interval over seeds, and a percentile bootstrap.
 *
 *     accuracy([0, 1, 1], [0, 1, 0]);                 // 2/3
 *     meanCI([0.71, 0.74, 0.69]);                      // { mean, low, high, n }
 */
import { Rng } from "../tensor/rng.js";

function sameLength(op: string, a: ArrayLike<unknown>, b: ArrayLike<unknown>): void {
  if (a.length !== b.length) throw new RangeError(`${op}: ${a.length} predictions for ${b.length} gold labels`);
  if (a.length === 0) throw new RangeError(`${op}: no examples`);
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

export function accuracy(pred: ArrayLike<number>, gold: ArrayLike<number>): number {
  sameLength("accuracy", pred, gold);
  let hit = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === gold[i]) hit++;
  return hit / pred.length;
}

/**
 * Unweighted mean of per-class F1 over the classes 0..numClasses-1 (default: every class
 * that occurs in gold or pred). A class with no true positives scores 0.
 */
export function macroF1(pred: ArrayLike<number>, gold: ArrayLike<number>, numClasses?: number): number {
  sameLength("macroF1", pred, gold);
  const classes = numClasses !== undefined
    ? Array.from({ length: numClasses }, (_, c) => c)
    : [...new Set([...Array.from(pred), ...Array.from(gold)])];
  let sum = 0;
  for (const c of classes) {
    let tp = 0, fp = 0, fn = 0;
    for (let i = 0; i < pred.length; i++) {
      if (pred[i] === c && gold[i] === c) tp++;
      else if (pred[i] === c) fp++;
      else if (gold[i] === c) fn++;
    }
    sum += tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
  }
  return sum / classes.length;
}

/**
 * Expected calibration error: predictions binned by confidence (max probability) into
 * `bins` equal-width bins (i/bins, (i+1)/bins]; the count-weighted mean of
 * |accuracy - mean confidence| over the bins.
 */
export function expectedCalibrationError(probs: ArrayLike<number>[], gold: ArrayLike<number>, bins = 10): number {
  sameLength("expectedCalibrationError", probs, gold);
  const count = new Array<number>(bins).fill(0), conf = new Array<number>(bins).fill(0), hits = new Array<number>(bins).fill(0);
  for (let i = 0; i < probs.length; i++) {
    const p = argmax(probs[i]);
    const c = probs[i][p];
    const b = Math.min(bins - 1, Math.max(0, Math.ceil(c * bins) - 1));
    count[b]++;
    conf[b] += c;
    if (p === gold[i]) hits[b]++;
  }
  let ece = 0;
  for (let b = 0; b < bins; b++) if (count[b] > 0) ece += Math.abs(hits[b] - conf[b]) / probs.length;
  return ece;
}

/** Mean negative log-likelihood of the gold labels (probabilities clamped at 1e-12). */
export function logLoss(probs: ArrayLike<number>[], gold: ArrayLike<number>): number {
  sameLength("logLoss", probs, gold);
  let s = 0;
  for (let i = 0; i < probs.length; i++) s -= Math.log(Math.max(1e-12, probs[i][gold[i]]));
  return s / probs.length;
}

// ---------------------------------------------------------------- intervals

function logGamma(x: number): number {
  // Lanczos approximation (g = 7, n = 9): ~15 significant digits for x > 0.
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction for the regularized incomplete beta (Numerical Recipes' betacf). */
function betaContinuedFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1, d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 300; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d; if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c; if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d; h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d; if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c; if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return h;
}

function incompleteBeta(a: number, b: number, x: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  return x < (a + 1) / (a + b + 2) ? (front * betaContinuedFraction(a, b, x)) / a : 1 - (front * betaContinuedFraction(b, a, 1 - x)) / b;
}

/** Student-t cumulative distribution with `df` degrees of freedom. */
export function studentTCdf(t: number, df: number): number {
  const tail = 0.5 * incompleteBeta(df / 2, 0.5, df / (df + t * t));
  return t >= 0 ? 1 - tail : tail;
}

/** The Student-t quantile: t with P(T <= t) = p (bisection on the CDF). */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`studentTQuantile: p ${p} must be in (0, 1)`);
  if (!(df > 0)) throw new RangeError(`studentTQuantile: df ${df} must be > 0`);
  let lo = -1e6, hi = 1e6;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

export interface Interval {
  mean: number;
  low: number;
  high: number;
  n: number;
}

/** The mean of values (e.g. one score per seed) with a two-sided Student-t confidence interval. */
export function meanCI(values: readonly number[], confidence = 0.95): Interval {
  const n = values.length;
  if (n === 0) throw new RangeError("meanCI: no values");
  if (!(confidence > 0 && confidence < 1)) throw new RangeError(`meanCI: confidence ${confidence} must be in (0, 1)`);
  const mean = values.reduce((s, v) => s + v, 0) / n;
  if (n === 1) return { mean, low: mean, high: mean, n };  // no spread to estimate from one value
  const sd = Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1));
  const half = studentTQuantile(1 - (1 - confidence) / 2, n - 1) * (sd / Math.sqrt(n));
  return { mean, low: mean - half, high: mean + half, n };
}

/**
 * Percentile bootstrap: `statistic` over `resamples` resamplings (with replacement) of the
 * indices 0..n-1; returns the statistic on all n, and the interval's percentiles.
 */
export function bootstrapCI(n: number, statistic: (indices: number[]) => number, { resamples = 1000, confidence = 0.95, seed = 0 } = {}): Interval {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`bootstrapCI: n must be a positive integer, got ${n}`);
  const rng = new Rng(seed);
  const stats: number[] = [];
  const idx = new Array<number>(n);
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < n; i++) idx[i] = rng.int(n);
    stats.push(statistic(idx));
  }
  stats.sort((a, b) => a - b);
  const q = (p: number) => stats[Math.min(resamples - 1, Math.max(0, Math.floor(p * resamples)))];
  const alpha = (1 - confidence) / 2;
  return { mean: statistic(Array.from({ length: n }, (_, i) => i)), low: q(alpha), high: q(1 - alpha), n };
}
