/**
 * Tensors and autograd on the native core. float32 values and int32 ids; views share
 * storage; `backward()` frees the graph it consumed; `noGrad()` frees what its body
 * created and did not return. There is no tidy(). Tensors live on a device ("cpu" by
 * default; see device.ts): `x.to("cuda")`, `x.toHost()`.
 *
 *     import * as T from "plinth/tensor";
 *     const w = T.randn([3, 2]); w.requiresGrad = true;
 *     const loss = T.mean(T.matmul(T.ones([4, 3]), w));
 *     loss.backward();          // w.grad is [3, 2]
 */
export { Tensor, Storage, emptyCache, memoryStats, sizeClass, empty, zeros, ones, full, tensor, ids, randn, rand, copyRaw, fromHost, writeHost } from "./tensor.js";
export { type Device, type DeviceKind, cpu, device } from "./device.js";
export type { DType } from "./tensor.js";
export { backward, noGrad, enableGrad, isGradEnabled, record, to } from "./autograd.js";
export type { Node } from "./autograd.js";
export { Rng, defaultRng, manualSeed } from "./rng.js";
export { ShapeError, numel, fmt } from "./shape.js";
export * from "./ops/elementwise.js";
export * from "./ops/views.js";
export * from "./ops/matmul.js";
export * from "./ops/reduce.js";
export * from "./ops/nn.js";
export * from "./ops/inplace.js";
