/**
 * Classifiers on frozen sentence embeddings with no training: nearest prototype (each class's
 * mean direction) and distance-weighted k nearest neighbours, both by cosine similarity.
 *
 * Language-model embeddings share one large common direction (every text's vector points much
 * the same way), which drowns the differences cosine should see; so the training embeddings'
 * mean is subtracted first (kept as `center`, applied to every query) and rows are L2-normalised.
 * The few free choices (the softmax sharpness, k) are picked by leave-one-out on the labeled
 * examples themselves, so nothing is tuned per task by hand.
 *
 *     const p = fitPrototypes(X, y, 2);      prototypeProbs(p, Xtest);   // number[][]
 *     const n = fitNeighbours(X, y, 2);      neighbourProbs(n, Xtest);   // n.k chosen by leave-one-out
 */
import { f32, i32, toFloat32, toInt32, type RawTensor } from "../io/safetensors.js";
import { AdapterError } from "./artifact.js";

export interface Prototypes {
  dim: number;
  numClasses: number;
  /** Subtracted from every embedding before normalising: the training embeddings' mean. */
  center: Float32Array;
  /** [numClasses, dim]: each class's mean unit vector, renormalised. */
  centroids: Float32Array;
  /** Softmax sharpness applied to the cosine similarities. */
  scale: number;
}

export interface Neighbours {
  dim: number;
  numClasses: number;
  center: Float32Array;
  /** [n, dim] unit vectors of the labeled examples, and their labels. */
  embeddings: Float32Array;
  labels: Int32Array;
  k: number;
  /** Neighbour i's weight is exp(scale * cos_i). */
  scale: number;
}

/** Softmax sharpness grid searched by leave-one-out log loss. */
const SCALES = [1, 2, 5, 10, 20, 50, 100];

function checkRows(op: string, X: readonly Float32Array[], dim?: number): number {
  if (X.length === 0) throw new RangeError(`${op}: no examples`);
  const D = dim ?? X[0].length;
  if (!(D >= 1)) throw new RangeError(`${op}: embeddings have no features`);
  X.forEach((x, i) => {
    if (x.length !== D) throw new RangeError(`${op}: example ${i} has ${x.length} features, expected ${D}`);
  });
  return D;
}

function checkLabels(op: string, y: readonly number[], n: number, numClasses: number): void {
  if (y.length !== n) throw new RangeError(`${op}: ${n} embeddings for ${y.length} labels`);
  if (!Number.isInteger(numClasses) || numClasses < 2) throw new RangeError(`${op}: numClasses must be an integer >= 2, got ${numClasses}`);
  y.forEach((c, i) => {
    if (!Number.isInteger(c) || c < 0 || c >= numClasses) throw new RangeError(`${op}: label ${c} of example ${i} is outside [0, ${numClasses})`);
  });
}

function meanRow(X: readonly Float32Array[], D: number): Float32Array {
  const mu = new Float32Array(D);
  for (const x of X) for (let d = 0; d < D; d++) mu[d] += x[d] / X.length;
  return mu;
}

/** (x - center) / ||x - center||; a zero row stays zero. */
export function unitRows(X: readonly Float32Array[], center: Float32Array): Float32Array[] {
  return X.map((x) => {
    const u = new Float32Array(center.length);
    let n2 = 0;
    for (let d = 0; d < u.length; d++) {
      u[d] = x[d] - center[d];
      n2 += u[d] * u[d];
    }
    const inv = n2 > 0 ? 1 / Math.sqrt(n2) : 0;
    for (let d = 0; d < u.length; d++) u[d] *= inv;
    return u;
  });
}

function dot(a: Float32Array, aOff: number, b: Float32Array, D: number): number {
  let s = 0;
  for (let d = 0; d < D; d++) s += a[aOff + d] * b[d];
  return s;
}

function softmax(scores: number[]): number[] {
  const m = Math.max(...scores);
  const e = scores.map((s) => Math.exp(s - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

const logLossOf = (p: number[], y: number): number => -Math.log(Math.max(p[y], 1e-12));

// ---------------------------------------------------------------- nearest prototype

function centroidsOf(U: readonly Float32Array[], y: readonly number[], C: number, D: number, skip = -1): Float32Array {
  const out = new Float32Array(C * D);
  U.forEach((u, i) => {
    if (i === skip) return;
    for (let d = 0; d < D; d++) out[y[i] * D + d] += u[d];
  });
  for (let c = 0; c < C; c++) {
    let n2 = 0;
    for (let d = 0; d < D; d++) n2 += out[c * D + d] ** 2;
    const inv = n2 > 0 ? 1 / Math.sqrt(n2) : 0;
    for (let d = 0; d < D; d++) out[c * D + d] *= inv;
  }
  return out;
}

const cosines = (centroids: Float32Array, u: Float32Array, C: number, D: number): number[] =>
  Array.from({ length: C }, (_, c) => dot(centroids, c * D, u, D));

export function fitPrototypes(X: readonly Float32Array[], y: readonly number[], numClasses: number): Prototypes {
  const D = checkRows("fitPrototypes", X);
  checkLabels("fitPrototypes", y, X.length, numClasses);
  const center = meanRow(X, D);
  const U = unitRows(X, center);
  const centroids = centroidsOf(U, y, numClasses, D);
  // Leave-one-out: each example against prototypes built without it (its class keeps >= 1 other member, else it is skipped).
  const counts = new Array<number>(numClasses).fill(0);
  for (const c of y) counts[c]++;
  const held: number[][] = [];
  U.forEach((u, i) => {
    if (counts[y[i]] < 2) return;
    held.push(cosines(centroidsOf(U, y, numClasses, D, i), u, numClasses, D));
  });
  const heldY = y.filter((c) => counts[c] >= 2);
  const scale = bestScale(held, heldY);
  return { dim: D, numClasses, center, centroids, scale };
}

/** The grid scale whose softmax of the held-out scores has the least log loss (10 when nothing was held out). */
function bestScale(scores: number[][], y: readonly number[]): number {
  if (scores.length === 0) return 10;
  let best = { loss: Infinity, scale: 10 };
  for (const s of SCALES) {
    const loss = scores.reduce((acc, row, i) => acc + logLossOf(softmax(row.map((v) => v * s)), y[i]), 0);
    if (loss < best.loss - 1e-9) best = { loss, scale: s };
  }
  return best.scale;
}

export function prototypeProbs(p: Prototypes, X: readonly Float32Array[]): number[][] {
  if (X.length === 0) return [];
  checkRows("prototypeProbs", X, p.dim);
  return unitRows(X, p.center).map((u) => softmax(cosines(p.centroids, u, p.numClasses, p.dim).map((v) => v * p.scale)));
}

// ---------------------------------------------------------------- k nearest neighbours

/** Class probabilities from the k most similar rows (excluding `skip`), weighted by exp(scale * cos), lightly smoothed. */
function vote(n: Pick<Neighbours, "embeddings" | "labels" | "numClasses" | "dim">, sims: Float64Array, k: number, scale: number, skip = -1): number[] {
  const order = Array.from(sims.keys()).filter((i) => i !== skip).sort((a, b) => sims[b] - sims[a] || a - b).slice(0, k);
  const top = sims[order[0]];
  const p = new Array<number>(n.numClasses).fill(0);
  let z = 0;
  for (const i of order) {
    const w = Math.exp(scale * (sims[i] - top));
    p[n.labels[i]] += w;
    z += w;
  }
  // A little mass on every class keeps log loss finite where no neighbour voted for the true one.
  const eps = 1e-3;
  return p.map((v) => (v / z + eps / n.numClasses) / (1 + eps));
}

function similarities(embeddings: Float32Array, rows: number, u: Float32Array, D: number): Float64Array {
  const s = new Float64Array(rows);
  for (let i = 0; i < rows; i++) s[i] = dot(embeddings, i * D, u, D);
  return s;
}

/**
 * k and the weighting chosen by leave-one-out on the labeled examples: k among the odd numbers up
 * to the smallest class's size (at most 15) by accuracy (ties to the larger k, which averages out
 * noise), then the scale by log loss.
 */
export function fitNeighbours(X: readonly Float32Array[], y: readonly number[], numClasses: number, { k }: { k?: number } = {}): Neighbours {
  const D = checkRows("fitNeighbours", X);
  checkLabels("fitNeighbours", y, X.length, numClasses);
  if (k !== undefined && !(Number.isInteger(k) && k >= 1)) throw new RangeError(`fitNeighbours: k must be a positive integer, got ${k}`);
  const center = meanRow(X, D);
  const U = unitRows(X, center);
  const embeddings = new Float32Array(U.length * D);
  U.forEach((u, i) => embeddings.set(u, i * D));
  const labels = Int32Array.from(y);
  const n = { embeddings, labels, numClasses, dim: D };
  const sims = U.map((u) => similarities(embeddings, U.length, u, D));
  let chosenK = k;
  if (chosenK === undefined) {
    const counts = new Array<number>(numClasses).fill(0);
    for (const c of y) counts[c]++;
    const most = Math.max(1, Math.min(15, Math.min(...counts.filter((c) => c > 0)), U.length - 1));
    let best = { correct: -1, k: 1 };
    for (let kk = 1; kk <= most; kk += 2) {
      let correct = 0;
      U.forEach((_, i) => {
        const p = vote(n, sims[i], kk, 10, i);
        if (p.indexOf(Math.max(...p)) === y[i]) correct++;
      });
      if (correct >= best.correct) best = { correct, k: kk };
    }
    chosenK = best.k;
  }
  const kk = Math.min(chosenK, U.length);
  let best = { loss: Infinity, scale: 10 };
  if (U.length > 1) {
    for (const s of SCALES) {
      const loss = U.reduce((acc, _, i) => acc + logLossOf(vote(n, sims[i], Math.min(kk, U.length - 1), s, i), y[i]), 0);
      if (loss < best.loss - 1e-9) best = { loss, scale: s };
    }
  }
  return { ...n, center, k: kk, scale: best.scale };
}

export function neighbourProbs(n: Neighbours, X: readonly Float32Array[]): number[][] {
  if (X.length === 0) return [];
  checkRows("neighbourProbs", X, n.dim);
  const rows = n.labels.length;
  return unitRows(X, n.center).map((u) => vote(n, similarities(n.embeddings, rows, u, n.dim), n.k, n.scale));
}

// ---------------------------------------------------------------- adapter tensors

function need(tensors: Record<string, RawTensor>, name: string, source: string): RawTensor {
  const t = tensors[name];
  if (t === undefined) throw new AdapterError(`${source}: tensor ${name} is missing`);
  return t;
}

export function prototypeTensors(p: Prototypes): Record<string, RawTensor> {
  return {
    "prototype.centroids": f32([p.numClasses, p.dim], p.centroids),
    "prototype.center": f32([p.dim], p.center),
  };
}

export function prototypesFromTensors(tensors: Record<string, RawTensor>, scale: number, source = "adapter"): Prototypes {
  const c = need(tensors, "prototype.centroids", source);
  if (c.shape.length !== 2) throw new AdapterError(`${source}: prototype.centroids has shape [${c.shape}], expected [classes, dim]`);
  const [numClasses, dim] = c.shape;
  const center = toFloat32(need(tensors, "prototype.center", source));
  if (center.length !== dim) throw new AdapterError(`${source}: prototype.center has ${center.length} values, expected ${dim}`);
  return { dim, numClasses, center, centroids: toFloat32(c), scale };
}

export function neighbourTensors(n: Neighbours): Record<string, RawTensor> {
  return {
    "knn.embeddings": f32([n.labels.length, n.dim], n.embeddings),
    "knn.labels": i32([n.labels.length], n.labels),
    "knn.center": f32([n.dim], n.center),
  };
}

export function neighboursFromTensors(tensors: Record<string, RawTensor>, { k, scale, numClasses }: { k: number; scale: number; numClasses: number }, source = "adapter"): Neighbours {
  const e = need(tensors, "knn.embeddings", source);
  if (e.shape.length !== 2) throw new AdapterError(`${source}: knn.embeddings has shape [${e.shape}], expected [examples, dim]`);
  const [rows, dim] = e.shape;
  const labels = toInt32(need(tensors, "knn.labels", source));
  const center = toFloat32(need(tensors, "knn.center", source));
  if (labels.length !== rows || center.length !== dim) throw new AdapterError(`${source}: knn tensors disagree in size (embeddings [${rows}, ${dim}], labels ${labels.length}, center ${center.length})`);
  if (labels.some((c) => c < 0 || c >= numClasses)) throw new AdapterError(`${source}: knn.labels hold a label outside [0, ${numClasses})`);
  if (!(Number.isInteger(k) && k >= 1)) throw new AdapterError(`${source}: knn k ${k} is not a positive integer`);
  return { dim, numClasses, center, embeddings: toFloat32(e), labels, k: Math.min(k, rows), scale };
}
