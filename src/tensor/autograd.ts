/**
 * Reverse-mode autograd. Each differentiable op records one Node: its name, inputs,
 * output, a backward closure and any buffers it saved (mean/rstd, lse, ...).
 * `backward(loss)` walks the nodes reachable from the loss in reverse creation
 * order, accumulates gradients into leaves' `.grad`, and releases the graph it
 * consumed (activations, saved buffers, intermediate gradients) as it goes, so a
 * training step's memory returns to the caching allocator deterministically.
 */
import { type Device, device as resolveDevice } from "./device.js";
import { ShapeError, fmt, sameShape } from "./shape.js";
import { state, runScoped } from "./scope.js";
import { Tensor, copyRaw, f32, full, toDeviceRaw } from "./tensor.js";

export interface Node {
  readonly id: number;
  readonly op: string;
  readonly inputs: readonly Tensor[];
  output: Tensor | null;
  /** Gradients for each input (null where none is needed); may return `g` itself. */
  backward: (g: Tensor) => (Tensor | null)[];
  /** Buffers owned by this node, released once its backward has run. */
  saved: Tensor[];
}

let nodeIds = 0;

/**
 * Called by backward() with each leaf as soon as its gradient is complete (every node that uses
 * it has run), so data-parallel training can start summing a bucket of gradients across
 * processes while the rest of backward runs (train/parallel/buckets.ts). Null: no calls.
 */
let leafGradReady: ((leaf: Tensor) => void) | null = null;

/** Installs (or, with null, removes) the gradient-ready callback; returns the previous one. */
export function onLeafGradReady(hook: ((leaf: Tensor) => void) | null): ((leaf: Tensor) => void) | null {
  const prev = leafGradReady;
  leafGradReady = hook;
  return prev;
}

/** Marks a root whose graph backward() has consumed, so a second call fails loudly. */
const CONSUMED: Node = { id: 0, op: "consumed", inputs: [], output: null, backward: () => [], saved: [] };

export function isGradEnabled(): boolean {
  return state.gradEnabled;
}

/** Runs fn without recording a graph; tensors created inside and not returned are released. */
export function noGrad<T>(fn: () => T): T {
  return runScoped(fn, false, (v): v is Tensor => v instanceof Tensor);
}

/** Runs fn with autograd on (the default), e.g. inside a noGrad block. */
export function enableGrad<T>(fn: () => T): T {
  const prev = state.gradEnabled;
  state.gradEnabled = true;
  try {
    return fn();
  } finally {
    state.gradEnabled = prev;
  }
}

export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  if (!state.gradEnabled) return false;
  for (const t of inputs) if (t != null && t.requiresGrad) return true;
  return false;
}

/** Records `output = op(inputs)` on the graph if any input needs a gradient. */
export function record(
  op: string,
  inputs: Tensor[],
  output: Tensor,
  backward: (g: Tensor) => (Tensor | null)[],
  saved: Tensor[] = [],
): Tensor {
  if (!needsGrad(...inputs)) {
    for (const s of saved) s.release();
    return output;
  }
  output.requiresGrad = true;
  output.node = { id: ++nodeIds, op, inputs, output, backward, saved };
  return output;
}

function accumulate(target: Tensor | undefined, g: Tensor): Tensor {
  if (target === undefined) return g;
  if (g.device !== target.device) {
    throw new Error(`backward: a gradient on ${g.device.name} for a tensor whose gradient lives on ${target.device.name}`);
  }
  target.device.kernels.axpy(g.size, 1, f32(g), f32(target));
  g.release();
  return target;
}

/**
 * Backpropagates from `root` (a scalar, or any tensor with an explicit `grad`),
 * accumulating into the `.grad` of every leaf that requires one.
 */
export function backward(root: Tensor, grad?: Tensor): void {
  if (root.node === CONSUMED) throw new Error(`backward: the graph of tensor${fmt(root.shape)} was already consumed by an earlier backward()`);
  if (!root.requiresGrad) throw new Error(`backward: tensor${fmt(root.shape)} does not require grad (no graph was recorded)`);
  if (grad === undefined && root.size !== 1) {
    throw new ShapeError(`backward: root${fmt(root.shape)} is not a scalar; pass a gradient of the same shape`);
  }
  if (grad !== undefined && !sameShape(grad.shape, root.shape)) {
    throw new ShapeError(`backward: gradient${fmt(grad.shape)} does not match root${fmt(root.shape)}`);
  }
  // Collect the graph.
  const nodes: Node[] = [];
  const seen = new Set<Node>();
  const stack: Node[] = root.node ? [root.node] : [];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (seen.has(n)) continue;
    seen.add(n);
    nodes.push(n);
    for (const t of n.inputs) if (t.node !== null && t.node !== CONSUMED && !seen.has(t.node)) stack.push(t.node);
  }
  nodes.sort((a, b) => b.id - a.id);

  const grads = new Map<Tensor, Tensor>();
  if (root.node === null) {
    // A leaf root: its gradient is the seed itself.
    root.grad = accumulate(root.grad ?? undefined, grad ? copyGrad(grad) : full(root.shape, 1, root.device));
    return;
  }
  grads.set(root, grad ? copyGrad(grad) : full(root.shape, 1, root.device));
  // With a gradient-ready callback: how many nodes still have to add to each leaf's gradient.
  const hook = leafGradReady;
  const pendingUses = hook === null ? null : new Map<Tensor, number>();
  if (pendingUses !== null) {
    for (const n of nodes) for (const t of n.inputs) if (t.node === null && t.requiresGrad) pendingUses.set(t, (pendingUses.get(t) ?? 0) + 1);
  }

  const prevGrad = state.gradEnabled;
  state.gradEnabled = false;
  try {
    for (const node of nodes) {
      const out = node.output!;
      const g = grads.get(out);
      grads.delete(out);
      if (g !== undefined) {
        const inputGrads = node.backward(g);
        let gUsed = false;
        for (let i = 0; i < node.inputs.length; i++) {
          let gi = inputGrads[i];
          const input = node.inputs[i];
          if (gi == null || !input.requiresGrad) {
            if (gi != null && gi !== g) gi.release();
            continue;
          }
          if (gi === g) {
            if (gUsed) gi = copyGrad(g);
            gUsed = true;
          }
          if (!sameShape(gi.shape, input.shape)) {
            throw new ShapeError(`backward: ${node.op} produced a gradient${fmt(gi.shape)} for input${fmt(input.shape)}`);
          }
          if (input.node === null) {
            input.grad = accumulate(input.grad ?? undefined, gi);
          } else {
            grads.set(input, accumulate(grads.get(input), gi));
          }
        }
        if (!gUsed) g.release();
      }
      if (pendingUses !== null) {
        for (const t of node.inputs) {
          const left = pendingUses.get(t);
          if (left === undefined) continue;
          if (left > 1) pendingUses.set(t, left - 1);
          else {
            pendingUses.delete(t);
            hook!(t);
          }
        }
      }
      for (const s of node.saved) s.release();
      node.saved = [];
      node.backward = releasedBackward;
      if (out !== root && !out.retained) out.release();
      node.output = null;
    }
  } finally {
    state.gradEnabled = prevGrad;
    for (const g of grads.values()) g.release();
  }
  root.node = CONSUMED;
}

function releasedBackward(): never {
  throw new Error("backward: this graph was already consumed by a previous backward()");
}

function copyGrad(g: Tensor): Tensor {
  return copyRaw(g);
}

/** A copy of x on `on` (x itself when it is there already); gradients flow back to x's device. */
export function to(x: Tensor, on: Device | string): Tensor {
  const dev = resolveDevice(on);
  if (dev === x.device) return x;
  const out = toDeviceRaw(x, dev);
  return record("to", [x], out, (g) => [toDeviceRaw(g, x.device)]);
}

declare module "./tensor.js" {
  interface Tensor {
    /** Backpropagates from this tensor; see `backward()`. */
    backward(grad?: Tensor): void;
    /** A copy on another device ("cpu", "opaque", "cuda:N"); this tensor when it is there already. Differentiable. */
    to(on: Device | string): Tensor;
    /** A copy on the CPU (this tensor when it is there already), whose `data` can be read. */
    toHost(): Tensor;
  }
}
Tensor.prototype.backward = function (this: Tensor, grad?: Tensor): void {
  backward(this, grad);
};
Tensor.prototype.to = function (this: Tensor, on: Device | string): Tensor {
  return to(this, on);
};
Tensor.prototype.toHost = function (this: Tensor): Tensor {
  return to(this, "cpu");
};
