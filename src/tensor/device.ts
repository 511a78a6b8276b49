/**
 * Devices: where a tensor's storage lives and which kernel table runs its ops.
 *
 *   cpu      host memory (ArrayBuffers from the native caching allocator); `tensor.data` reads it
 *   opaque   a test device: native blocks that JavaScript cannot read, kernels run on the CPU;
 *            values move only through upload/download, as they would to a GPU
 *   cuda:N   an NVIDIA GPU through the optional CUDA addon (native/cuda), when it is built
 *
 * Ops check that their operands share a device and run that device's kernels; nothing above
 * src/tensor/ touches device memory except through `to()`, `toHost()`, `toArray()` and `item()`.
 *
 *     const x = T.randn([2, 3]).to("opaque");   // T.randn(...).to(device("opaque")) is the same
 *     x.data;                                   // throws: the values live on the device
 *     x.toHost().data;                          // a CPU copy
 */
import { backend, type Kernels } from "../native/index.js";
import { cudaAddon } from "../native/cuda.js";

export type DeviceKind = "cpu" | "opaque" | "cuda";

export interface Device {
  /** "cpu", "opaque" or "cuda:N". */
  readonly name: string;
  readonly kind: DeviceKind;
  /** The kernels that run on this device's memory (operands are typed arrays on the CPU, block references elsewhere). */
  readonly kernels: Kernels;
  /** Device memory (never called for the CPU, whose storage is an ArrayBuffer). */
  alloc(bytes: number): unknown;
  free(block: unknown): void;
  upload(block: unknown, byteOffset: number, src: Float32Array | Int32Array): void;
  download(block: unknown, byteOffset: number, dst: Float32Array | Int32Array): void;
  copy(src: unknown, srcByteOffset: number, dst: unknown, dstByteOffset: number, bytes: number): void;
}

function hostOnly(): never {
  throw new Error("cpu: host storage is an ArrayBuffer, not a device block (internal error)");
}

export const cpu: Device = {
  name: "cpu", kind: "cpu", kernels: backend,
  alloc: hostOnly, free: hostOnly, upload: hostOnly, download: hostOnly, copy: hostOnly,
};

export const opaque: Device = {
  name: "opaque", kind: "opaque", kernels: backend,
  alloc: (bytes) => backend.deviceAlloc(bytes),
  free: (block) => void backend.deviceFree(block),
  upload: (block, off, src) => backend.deviceUpload(block, off, src),
  download: (block, off, dst) => backend.deviceDownload(block, off, dst),
  copy: (s, so, d, dO, n) => backend.deviceCopy(s, so, d, dO, n),
};

const cudaDevices = new Map<number, Device>();

function cudaDevice(index: number): Device {
  const known = cudaDevices.get(index);
  if (known !== undefined) return known;
  const addon = cudaAddon();
  if (addon.module === null) throw new Error(`device cuda:${index}: ${addon.reason}`);
  const cuda = addon.module;
  const count = cuda.deviceCount();
  if (index >= count) {
    throw new RangeError(`device cuda:${index}: ${count === 0 ? "no CUDA GPU is visible" : `only ${count} CUDA GPU(s) are visible (cuda:0..cuda:${count - 1})`}`);
  }
  const d: Device = {
    name: `cuda:${index}`, kind: "cuda", kernels: cuda.kernels(index),
    alloc: (bytes) => cuda.alloc(index, bytes),
    free: (block) => cuda.free(block),
    upload: (block, off, src) => cuda.upload(block, off, src),
    download: (block, off, dst) => cuda.download(block, off, dst),
    copy: (s, so, dd, dO, n) => cuda.copy(s, so, dd, dO, n),
  };
  cudaDevices.set(index, d);
  return d;
}

/** The device named by "cpu", "opaque", "cuda" (cuda:0) or "cuda:N"; a Device is returned as is. */
export function device(spec: string | Device): Device {
  if (typeof spec !== "string") return spec;
  if (spec === "cpu") return cpu;
  if (spec === "opaque") return opaque;
  const m = /^cuda(?::(\d+))?$/.exec(spec);
  if (m !== null) return cudaDevice(m[1] === undefined ? 0 : Number(m[1]));
  throw new RangeError(`device: unknown device "${spec}" (expected cpu, cuda, cuda:N or opaque)`);
}
