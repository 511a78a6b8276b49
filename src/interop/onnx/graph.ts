/**
 * Builds ONNX graphs node by node: unique value names, initializers, constants, and the
 * transformer pieces GPT, BERT and CLIP share (LayerNorm, linear layers, tanh GELU,
 * multi-head attention with an optional boolean mask), with optional int8 weights.
 */
import type { Linear } from "../../nn/layers.js";
import type { OnnxAttr, OnnxGraph, OnnxTensor, OnnxValueInfo } from "./model.js";
import type { OnnxNode } from "./model.js";

/** A tensor's values as float32 (parameters are float32). */
export const f32 = (t: { toArray(): Float32Array | Int32Array }): Float32Array => t.toArray() as Float32Array;

/** A row-major [rows, cols] matrix as [cols, rows]. */
export function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

/** An nn.Linear's [out, in] weight as the [in, out] matrix that ONNX MatMul takes. */
export const transposed = (l: Linear): Float32Array => transpose(f32(l.weight), l.outFeatures, l.inFeatures);

export interface WeightOptions {
  /** Store 2-D weights as int8 with one float scale per output column (DequantizeLinear in the graph). */
  int8?: boolean;
}

export class GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxTensor[] = [];
  readonly inputs: OnnxValueInfo[] = [];
  readonly outputs: OnnxValueInfo[] = [];
  private used = new Set<string>();
  private constants = new Map<string, string>();

  constructor(readonly name: string, readonly weights: WeightOptions = {}) {}

  private fresh(base: string): string {
    let name = base, i = 1;
    while (this.used.has(name)) name = `${base}_${i++}`;
    this.used.add(name);
    return name;
  }

  input(name: string, dtype: OnnxValueInfo["dtype"], shape: OnnxValueInfo["shape"]): string {
    this.used.add(name);
    this.inputs.push({ name, dtype, shape });
    return name;
  }

  /** Names `value` as a graph output (through an Identity if it already has another name). */
  output(value: string, name: string, dtype: OnnxValueInfo["dtype"], shape: OnnxValueInfo["shape"]): void {
    if (value !== name) {
      this.used.add(name);
      this.nodes.push({ op: "Identity", name: this.fresh(`${name}/Identity`), inputs: [value], outputs: [name] });
    }
    this.outputs.push({ name, dtype, shape });
  }

  /** One node; returns its output names. */
  ops(op: string, inputs: string[], outputs: number | string[], attrs?: Record<string, OnnxAttr>, hint = op): string[] {
    const outs = typeof outputs === "number" ? Array.from({ length: outputs }, (_, i) => this.fresh(`${hint}${outputs > 1 ? `_${i}` : ""}`)) : outputs;
    for (const o of outs) this.used.add(o);
    this.nodes.push({ op, name: this.fresh(`${hint}/${op}`), inputs, outputs: outs, attrs });
    return outs;
  }

  op(op: string, inputs: string[], attrs?: Record<string, OnnxAttr>, hint = op): string {
    return this.ops(op, inputs, 1, attrs, hint)[0];
  }

  init(name: string, dtype: OnnxTensor["dtype"], dims: number[], data: OnnxTensor["data"]): string {
    const n = this.fresh(name);
    this.initializers.push({ name: n, dtype, dims, data });
    return n;
  }

  /** A float weight; 2-D ones become int8 + DequantizeLinear when the builder quantizes (axis: the scaled axis). */
  weight(name: string, dims: number[], data: Float32Array, axis = 1): string {
    if (!this.weights.int8 || dims.length !== 2) return this.init(name, "float32", dims, data);
    const q = quantizeInt8(data, dims[0], dims[1], axis);
    const wq = this.init(`${name}_quantized`, "int8", dims, q.values);
    const scale = this.init(`${name}_scale`, "float32", [q.scales.length], q.scales);
    const zero = this.init(`${name}_zero_point`, "int8", [q.scales.length], new Int8Array(q.scales.length));
    return this.op("DequantizeLinear", [wq, scale, zero], { axis: { i: axis } }, name);
  }

  /**
   * Rows of an embedding table [rows, cols] picked by `ids`; with int8 weights the table is
   * stored int8 with one scale per row and only the picked rows are dequantized.
   */
  embedding(name: string, rows: number, cols: number, table: Float32Array, ids: string): string {
    if (!this.weights.int8) return this.op("Gather", [this.init(name, "float32", [rows, cols], table), ids], { axis: { i: 0 } }, name);
    const q = quantizeInt8(table, rows, cols, 0);
    const wq = this.init(`${name}_quantized`, "int8", [rows, cols], q.values);
    const scales = this.init(`${name}_scale`, "float32", [rows], q.scales);
    const picked = this.op("Cast", [this.op("Gather", [wq, ids], { axis: { i: 0 } }, name)], { to: { i: 1 } }, name);
    const s = this.op("Unsqueeze", [this.op("Gather", [scales, ids], { axis: { i: 0 } }, name), this.const("int64", [-1])], undefined, name);
    return this.op("Mul", [picked, s], undefined, name);
  }

  /** A constant initializer shared by every use (e.g. shapes, scalars). */
  const(dtype: "float32" | "int64", values: readonly number[], dims: number[] = [values.length]): string {
    const key = `${dtype}:${dims.join("x")}:${values.join(",")}`;
    let name = this.constants.get(key);
    if (name === undefined) {
      const data = dtype === "float32" ? Float32Array.from(values) : BigInt64Array.from(values.map((v) => BigInt(v)));
      name = this.init(`const_${dtype === "float32" ? "f" : "i"}_${values.slice(0, 4).join("_").replace(/[^0-9a-z_]/gi, "m")}`, dtype, dims, data);
      this.constants.set(key, name);
    }
    return name;
  }

  scalar(dtype: "float32" | "int64", v: number): string {
    return this.const(dtype, [v], []);
  }

  build(): OnnxGraph {
    return { name: this.name, nodes: this.nodes, initializers: this.initializers, inputs: this.inputs, outputs: this.outputs };
  }

  // ---- transformer pieces ----

  layerNorm(x: string, w: Float32Array, b: Float32Array, eps: number, name: string): string {
    const g = this.init(`${name}.weight`, "float32", [w.length], w);
    const beta = this.init(`${name}.bias`, "float32", [b.length], b);
    return this.op("LayerNormalization", [x, g, beta], { axis: { i: -1 }, epsilon: { f: eps } }, name);
  }

  /** x [..., in] @ w [in, out] + b. */
  linear(x: string, w: Float32Array, inF: number, outF: number, b: Float32Array | null, name: string): string {
    const wt = this.weight(`${name}.weight`, [inF, outF], w);
    const y = this.op("MatMul", [x, wt], undefined, name);
    return b === null ? y : this.op("Add", [y, this.init(`${name}.bias`, "float32", [outF], b)], undefined, name);
  }

  /** GPT-2's tanh GELU: 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))). */
  geluTanh(x: string, name: string): string {
    const x3 = this.op("Mul", [this.op("Mul", [x, x], undefined, name), x], undefined, name);
    const inner = this.op("Add", [x, this.op("Mul", [x3, this.scalar("float32", 0.044715)], undefined, name)], undefined, name);
    const t = this.op("Tanh", [this.op("Mul", [inner, this.scalar("float32", Math.sqrt(2 / Math.PI))], undefined, name)], undefined, name);
    const half = this.op("Mul", [x, this.scalar("float32", 0.5)], undefined, name);
    return this.op("Mul", [half, this.op("Add", [t, this.scalar("float32", 1)], undefined, name)], undefined, name);
  }

  /** [B, T, C] -> [B, NH, T, HS]. */
  splitHeads(x: string, heads: number, headSize: number, name: string): string {
    const r = this.op("Reshape", [x, this.const("int64", [0, 0, heads, headSize])], undefined, name);
    return this.op("Transpose", [r], { perm: { ints: [0, 2, 1, 3] } }, name);
  }

  /** [B, NH, T, HS] -> [B, T, C]. */
  mergeHeads(x: string, channels: number, name: string): string {
    const t = this.op("Transpose", [x], { perm: { ints: [0, 2, 1, 3] } }, name);
    return this.op("Reshape", [t, this.const("int64", [0, 0, channels])], undefined, name);
  }

  /** softmax(q kᵀ / √HS, masked where `allowed` is false) v: q [B, NH, S, HS], k/v [B, NH, L, HS], allowed broadcasting to [B, NH, S, L]. */
  attention(q: string, k: string, v: string, headSize: number, allowed: string | null, name: string): string {
    const kt = this.op("Transpose", [k], { perm: { ints: [0, 1, 3, 2] } }, name);
    let scores = this.op("Mul", [this.op("MatMul", [q, kt], undefined, name), this.scalar("float32", 1 / Math.sqrt(headSize))], undefined, name);
    // A large finite fill (not -inf) keeps fully masked rows (padding queries) finite, as Hugging Face does.
    if (allowed !== null) scores = this.op("Where", [allowed, scores, this.scalar("float32", -1e9)], undefined, name);
    const p = this.op("Softmax", [scores], { axis: { i: -1 } }, name);
    return this.op("MatMul", [p, v], undefined, name);
  }
}

/** Symmetric int8 with one scale per slice along `axis` (0: per row, 1: per column) of a [rows, cols] matrix. */
export function quantizeInt8(w: Float32Array, rows: number, cols: number, axis: number): { values: Int8Array; scales: Float32Array } {
  const n = axis === 0 ? rows : cols;
  const amax = new Float32Array(n);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const i = axis === 0 ? r : c;
      const a = Math.abs(w[r * cols + c]);
      if (a > amax[i]) amax[i] = a;
    }
  }
  const scales = amax.map((a) => (a > 0 ? a / 127 : 1));
  const values = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) values[r * cols + c] = Math.max(-127, Math.min(127, Math.round(w[r * cols + c] / scales[axis === 0 ? r : c])));
  }
  return { values, scales };
}
