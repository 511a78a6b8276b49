/**
 * Fused neural-network ops: softmax, LayerNorm, embedding, cross-entropy, causal
 * self-attention on a fused qkv, and multi-head attention on separate q, k, v.
 * Kernels: native/src/kernels/{softmax,layernorm,embedding,cross_entropy,attention}.inc.
 */
import { record } from "../autograd.js";
import { ShapeError, fmt, numel, sameShape } from "../shape.js";
import { Tensor, empty, f32, fromHost, i32, zeros } from "../tensor.js";
import { cpu } from "../device.js";
import { dense, expectFloat, expectInt, expectNdim, gradSink, kernelsOf } from "./util.js";

/** Softmax over the last axis. */
export function softmax(x: Tensor): Tensor {
  expectFloat("softmax", x);
  expectNdim("softmax", x, "x", 1);
  const n = x.shape[x.ndim - 1];
  const rows = n === 0 ? 0 : x.size / n;
  const kern = x.device.kernels, dev = x.device;
  const saved: Tensor[] = [];
  const cx = dense(x, saved);
  const out = empty([...x.shape], "float32", dev);
  kern.softmaxForward(rows, n, f32(cx), f32(out));
  for (const s of saved) s.release();
  return record("softmax", [x], out, (g) => {
    const gx = empty([...x.shape], "float32", dev);
    kern.softmaxBackward(rows, n, f32(out), f32(g), f32(gx), false);
    return [gx];
  });
}

/** LayerNorm over the last axis with weight and bias [C]. */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  expectFloat("layerNorm", x, weight, bias);
  expectNdim("layerNorm", x, "x", 1);
  const C = x.shape[x.ndim - 1];
  if (C === 0) throw new ShapeError(`layerNorm: x${fmt(x.shape)}: expected a non-empty last axis to normalize`);
  if (weight.ndim !== 1 || weight.shape[0] !== C || bias.ndim !== 1 || bias.shape[0] !== C) {
    throw new ShapeError(`layerNorm: x${fmt(x.shape)} with weight${fmt(weight.shape)} and bias${fmt(bias.shape)}: expected both [${C}]`);
  }
  const rows = x.size / C;
  const kern = kernelsOf("layerNorm", "x,weight,bias", x, weight, bias), dev = x.device;
  const saved: Tensor[] = [];
  const cx = dense(x, saved);
  const cw = dense(weight, saved), cb = dense(bias, saved);
  const out = empty([...x.shape], "float32", dev);
  const mean = empty([rows], "float32", dev), rstd = empty([rows], "float32", dev);
  saved.push(mean, rstd);
  kern.layernormForward(rows, C, f32(cx), f32(cw), f32(cb), eps, f32(out), f32(mean), f32(rstd));
  return record("layerNorm", [x, weight, bias], out, (g) => {
    const gx = empty([...x.shape], "float32", dev);
    const sw = gradSink(weight, zeros), sb = gradSink(bias, zeros);
    const gw = sw ?? zeros([C], dev), gb = sb ?? zeros([C], dev);
    kern.layernormBackward(rows, C, f32(cx), f32(cw), f32(mean), f32(rstd), f32(g), f32(gx), f32(gw), f32(gb), false);
    return [x.requiresGrad ? gx : (gx.release(), null), sw === null ? gw : null, sb === null ? gb : null];
  }, saved);
}

/** Rows of `table` [V, C] gathered by int32 `ids` of any shape -> [...ids.shape, C]. */
export function embedding(ids: Tensor, table: Tensor): Tensor {
  expectInt("embedding", ids, "ids");
  expectFloat("embedding", table);
  if (table.ndim !== 2) throw new ShapeError(`embedding: table${fmt(table.shape)} must be [V, C]`);
  const [V, C] = table.shape;
  const kern = kernelsOf("embedding", "ids,table", ids, table), dev = table.device;
  const n = ids.size;
  const cid = ids.isContiguous() ? ids : null;
  if (cid === null) throw new ShapeError("embedding: ids must be contiguous");
  const ct = dense(table);
  const out = empty([...ids.shape, C], "float32", dev);
  try {
    kern.embeddingForward(n, C, V, i32(cid), f32(ct), f32(out));
  } catch (e) {
    out.release();
    throw new RangeError(`embedding: ids for table${fmt(table.shape)}: ${(e as Error).message}`);
  } finally {
    if (ct !== table) ct.release();
  }
  return record("embedding", [table], out, (g) => {
    const sink = gradSink(table, zeros);
    const gt = sink ?? zeros([V, C], dev);
    kern.embeddingBackward(n, C, V, i32(cid), f32(g), f32(gt));
    return [sink === null ? gt : null];
  });
}

/**
 * Mean cross-entropy of logits [..., V] against int32 targets [...]; targets < 0 are ignored.
 * Fused: the softmax is never materialised.
 */
export function crossEntropy(logits: Tensor, targets: Tensor): Tensor {
  expectFloat("crossEntropy", logits);
  expectInt("crossEntropy", targets, "targets");
  const V = logits.shape[logits.ndim - 1];
  const lead = logits.shape.slice(0, -1);
  if (logits.ndim < 1 || lead.length !== targets.ndim || lead.some((d, i) => d !== targets.shape[i])) {
    throw new ShapeError(`crossEntropy: logits${fmt(logits.shape)} vs targets${fmt(targets.shape)}: expected targets.shape == logits.shape[:-1]`);
  }
  const N = numel(lead);
  const kern = kernelsOf("crossEntropy", "logits,targets", logits, targets), dev = logits.device;
  // The ignored-target count is read on the host (targets are small; a device copies them out once).
  const onHost = dev === cpu;
  const host = onHost && targets.isContiguous() ? targets.ids : (targets.toArray() as Int32Array);
  const td = onHost || targets.isContiguous() ? targets : fromHost(host, [...targets.shape], dev);
  const tgt = () => (onHost ? host : i32(td));
  let count = 0;
  for (let i = 0; i < N; i++) if (host[i] >= 0) count++;
  if (count === 0) throw new ShapeError(`crossEntropy: every one of the ${N} targets is ignored (< 0); nothing to average`);
  const saved: Tensor[] = td === targets ? [] : [td];
  const cl = dense(logits, saved);
  const lse = empty([N], "float32", dev), losses = empty([N], "float32", dev);
  saved.push(lse);
  let total: number;
  try {
    total = kern.crossEntropyForward(N, V, f32(cl), tgt(), f32(lse), f32(losses));
  } catch (e) {
    for (const s of saved) s.release();
    throw new RangeError(`crossEntropy: targets for ${V} classes: ${(e as Error).message}`);
  } finally {
    losses.release();
  }
  const out = fromHost(Float32Array.of(total / count), [], dev);
  return record("crossEntropy", [logits], out, (g) => {
    const gl = empty([...logits.shape], "float32", dev);
    kern.crossEntropyBackward(N, V, f32(cl), tgt(), f32(lse), (onHost ? g.data[0] : g.item()) / count, f32(gl));
    return [gl];
  }, saved);
}

/**
 * Causal multi-head self-attention on a fused projection qkv [B, T, 3C] (q, k, v
 * concatenated on the last axis, heads contiguous inside each) -> [B, T, C].
 */
export function causalSelfAttention(qkv: Tensor, nHead: number): Tensor {
  expectFloat("causalSelfAttention", qkv);
  if (qkv.ndim !== 3 || qkv.shape[2] % 3 !== 0) {
    throw new ShapeError(`causalSelfAttention: qkv${fmt(qkv.shape)}: expected [B, T, 3*C]`);
  }
  const [B, T, C3] = qkv.shape;
  const C = C3 / 3;
  if (!Number.isInteger(nHead) || nHead < 1 || C % nHead !== 0) {
    throw new ShapeError(`causalSelfAttention: C=${C} is not divisible by nHead=${nHead}`);
  }
  const HS = C / nHead;
  const kern = qkv.device.kernels, dev = qkv.device;
  const saved: Tensor[] = [];
  const x = dense(qkv, saved);
  const q = f32(x), k = f32(x, C), v = f32(x, 2 * C);
  const out = empty([B, T, C], "float32", dev);
  const lse = empty([B, nHead, T], "float32", dev);
  saved.push(lse);
  const dims = [B, T, T, nHead, HS];
  const scale = 1 / Math.sqrt(HS);
  kern.attentionForward(dims, scale, true, q, T * C3, C3, k, T * C3, C3, v, T * C3, C3, f32(out), T * C, C, f32(lse));
  return record("attention", [qkv], out, (g) => {
    const gx = empty([B, T, C3], "float32", dev);
    kern.attentionBackward(dims, scale, true, q, T * C3, C3, k, T * C3, C3, v, T * C3, C3, f32(out), T * C, C, f32(lse),
      f32(g), f32(gx), f32(gx, C), f32(gx, 2 * C), false);
    return [gx];
  }, saved);
}

/**
 * Multi-head attention with separate projections q, k, v [B, T, C] (heads contiguous
 * inside C) -> [B, T, C]; every query sees every key unless `causal`. The kernel reads
 * the three tensors in place with row stride C and stores no T x T scores.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, nHead: number, { causal = false } = {}): Tensor {
  expectFloat("attention", q, k, v);
  if (q.ndim !== 3 || !sameShape(q.shape, k.shape) || !sameShape(q.shape, v.shape)) {
    throw new ShapeError(`attention: q${fmt(q.shape)}, k${fmt(k.shape)}, v${fmt(v.shape)}: expected three [B, T, C] tensors of one shape`);
  }
  const [B, T, C] = q.shape;
  if (!Number.isInteger(nHead) || nHead < 1 || C < 1 || C % nHead !== 0) {
    throw new ShapeError(`attention: q${fmt(q.shape)}: C=${C} must be a positive multiple of nHead=${nHead}`);
  }
  const HS = C / nHead;
  const kern = kernelsOf("attention", "q,k,v", q, k, v), dev = q.device;
  const saved: Tensor[] = [];
  const cq = dense(q, saved), ck = dense(k, saved), cv = dense(v, saved);
  const out = empty([B, T, C], "float32", dev);
  const lse = empty([B, nHead, T], "float32", dev);
  saved.push(lse);
  const dims = [B, T, T, nHead, HS];
  const scale = 1 / Math.sqrt(HS);
  const bs = T * C;
  kern.attentionForward(dims, scale, causal, f32(cq), bs, C, f32(ck), bs, C, f32(cv), bs, C, f32(out), bs, C, f32(lse));
  return record("attention", [q, k, v], out, (g) => {
    const gq = empty([B, T, C], "float32", dev), gk = empty([B, T, C], "float32", dev), gv = empty([B, T, C], "float32", dev);
    kern.attentionBackward(dims, scale, causal, f32(cq), bs, C, f32(ck), bs, C, f32(cv), bs, C, f32(out), bs, C, f32(lse),
      f32(g), f32(gq), f32(gk), f32(gv), false);
    const keep = (t: Tensor, input: Tensor): Tensor | null => (input.requiresGrad ? t : (t.release(), null));
    return [keep(gq, q), keep(gk, k), keep(gv, v)];
  }, saved);
}
