/**
 * Grad mode and release scopes. `noGrad(fn)` turns autograd off and releases every
 * tensor created inside it that is not part of fn's return value (or retained), so
 * inference loops hold steady memory without any tidy() calls.
 */
import type { Tensor } from "./tensor.js";

export const state = {
  gradEnabled: true,
  scopes: [] as Tensor[][],
};

export function track(t: Tensor): void {
  const top = state.scopes[state.scopes.length - 1];
  if (top !== undefined) top.push(t);
}

function collect(value: unknown, keep: Set<Tensor>, depth: number, isTensor: (v: unknown) => v is Tensor): void {
  if (depth > 6 || value === null || typeof value !== "object") return;
  if (isTensor(value)) {
    keep.add(value);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collect(v, keep, depth + 1, isTensor);
    return;
  }
  if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, keep, depth + 1, isTensor);
  }
}

export function runScoped<T>(fn: () => T, grad: boolean, isTensor: (v: unknown) => v is Tensor): T {
  const prev = state.gradEnabled;
  state.gradEnabled = grad;
  const created: Tensor[] = [];
  state.scopes.push(created);
  let result: T | undefined;
  let ok = false;
  try {
    result = fn();
    ok = true;
    return result;
  } finally {
    state.scopes.pop();
    state.gradEnabled = prev;
    const keep = new Set<Tensor>();
    if (ok) collect(result, keep, 0, isTensor);
    const parent = state.scopes[state.scopes.length - 1];
    for (const t of created) {
      if (keep.has(t) || t.retained) {
        if (parent !== undefined && !t.retained) parent.push(t);
      } else {
        t.release();
      }
    }
  }
}
