/**
 * ONNX ModelProto encoding, from plain typed objects, with the field numbers of
 * onnx.proto (IR version 8, default domain opset 17).
 *
 *   ModelProto      ir_version 1, producer_name 2, producer_version 3, graph 7, opset_import 8, metadata_props 14
 *   GraphProto      node 1, name 2, initializer 5, input 11, output 12
 *   NodeProto       input 1, output 2, name 3, op_type 4, attribute 5, domain 7
 *   AttributeProto  name 1, f 2, i 3, s 4, t 5, floats 7, ints 8, type 20
 *   TensorProto     dims 1, data_type 2, name 8, raw_data 9
 *   ValueInfoProto  name 1, type 2 → TypeProto.tensor_type 1 → {elem_type 1, shape 2 → dim 1 → {dim_value 1 | dim_param 2}}
 */
import { ProtoWriter } from "./proto.js";

export type OnnxDType = "float32" | "uint8" | "int8" | "int32" | "int64" | "bool";

/** TensorProto.DataType codes. */
export const ONNX_DTYPE: Record<OnnxDType, number> = { float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, bool: 9 };

export type OnnxData = Float32Array | Uint8Array | Int8Array | Int32Array | BigInt64Array;

export interface OnnxTensor {
  name: string;
  dtype: OnnxDType;
  dims: number[];
  data: OnnxData;
}

export type OnnxAttr = { i: number } | { f: number } | { s: string } | { ints: number[] } | { floats: number[] } | { t: OnnxTensor };

export interface OnnxNode {
  op: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attrs?: Record<string, OnnxAttr>;
  domain?: string;
}

/** A graph input or output: a dimension is a number (fixed) or a name (symbolic, e.g. "batch_size"). */
export interface OnnxValueInfo {
  name: string;
  dtype: OnnxDType;
  shape: (number | string)[];
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
}

export interface OnnxModel {
  graph: OnnxGraph;
  opset?: number;
  producerVersion?: string;
  metadata?: Record<string, string>;
}

const BYTES_PER: Record<OnnxDType, number> = { float32: 4, uint8: 1, int8: 1, int32: 4, int64: 8, bool: 1 };

function tensorProto(t: OnnxTensor): ProtoWriter {
  const n = t.dims.reduce((a, b) => a * b, 1);
  if (t.data.length !== n) throw new Error(`onnx: initializer ${t.name}: ${t.data.length} values for dims [${t.dims.join(", ")}] (expected ${n})`);
  const raw = new Uint8Array(t.data.buffer, t.data.byteOffset, n * BYTES_PER[t.dtype]);
  const w = new ProtoWriter();
  if (t.dims.length > 0) w.packedVarints(1, t.dims);
  return w.varint(2, ONNX_DTYPE[t.dtype]).string(8, t.name).bytes(9, raw);
}

function attributeProto(name: string, a: OnnxAttr): ProtoWriter {
  const w = new ProtoWriter().string(1, name);
  if ("f" in a) return w.float(2, a.f).varint(20, 1);
  if ("i" in a) return w.varint(3, a.i).varint(20, 2);
  if ("s" in a) return w.string(4, a.s).varint(20, 3);
  if ("t" in a) return w.message(5, tensorProto(a.t)).varint(20, 4);
  if ("floats" in a) return w.packedFloats(7, a.floats).varint(20, 6);
  return w.packedVarints(8, a.ints).varint(20, 7);
}

function nodeProto(n: OnnxNode): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name).string(4, n.op);
  for (const [k, v] of Object.entries(n.attrs ?? {})) w.message(5, attributeProto(k, v));
  if (n.domain !== undefined) w.string(7, n.domain);
  return w;
}

function valueInfoProto(v: OnnxValueInfo): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.shape) shape.message(1, typeof d === "number" ? new ProtoWriter().varint(1, d) : new ProtoWriter().string(2, d));
  const tensorType = new ProtoWriter().varint(1, ONNX_DTYPE[v.dtype]).message(2, shape);
  return new ProtoWriter().string(1, v.name).message(2, new ProtoWriter().message(1, tensorType));
}

/** The serialized ModelProto. */
export function encodeModel(m: OnnxModel): Uint8Array {
  const g = m.graph;
  const graph = new ProtoWriter();
  for (const n of g.nodes) graph.message(1, nodeProto(n));
  graph.string(2, g.name);
  for (const t of g.initializers) graph.message(5, tensorProto(t));
  for (const v of g.inputs) graph.message(11, valueInfoProto(v));
  for (const v of g.outputs) graph.message(12, valueInfoProto(v));
  const model = new ProtoWriter()
    .varint(1, 8)
    .string(2, "plinth")
    .string(3, m.producerVersion ?? "0.1.0")
    .message(7, graph)
    .message(8, new ProtoWriter().string(1, "").varint(2, m.opset ?? 17));
  for (const [k, v] of Object.entries(m.metadata ?? {})) model.message(14, new ProtoWriter().string(1, k).string(2, v));
  return model.finish();
}
