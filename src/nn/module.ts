/**
 * Module: a tree of parameters named by field path, so names equal checkpoint keys
 * (`transformer.h.0.attn.c_attn.weight`). `stateDict()` is a walk over fields;
 * `loadStateDict()` is a shape-checked copy.
 */
import { ShapeError, fmt, sameShape } from "../tensor/shape.js";
import { Tensor, empty, relocate, writeHost } from "../tensor/tensor.js";
import { type Device, device as resolveDevice } from "../tensor/device.js";
import { fill_ } from "../tensor/ops/inplace.js";

export abstract class Module {
  training = true;

  /** [name, parameter] pairs in field order; parameters are tensors with requiresGrad. */
  namedParameters(prefix = ""): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    const walk = (value: unknown, name: string): void => {
      if (value instanceof Tensor) {
        if (value.requiresGrad && !seen.has(value)) {
          seen.add(value);
          out.push([name, value]);
        }
      } else if (value instanceof Module) {
        for (const [key, child] of Object.entries(value)) {
          if (key === "training") continue;
          walk(child, name === "" ? key : `${name}.${key}`);
        }
      } else if (Array.isArray(value)) {
        value.forEach((child, i) => walk(child, `${name}.${i}`));
      }
    };
    for (const [key, child] of Object.entries(this)) {
      if (key === "training") continue;
      walk(child, prefix === "" ? key : `${prefix}.${key}`);
    }
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  numParameters(): number {
    return this.parameters().reduce((s, p) => s + p.size, 0);
  }

  stateDict(): Record<string, Tensor> {
    return Object.fromEntries(this.namedParameters());
  }

  /**
   * Copies tensors (or raw float32 arrays with shapes) into the parameters by name.
   * strict: every parameter must be present and no unknown key may remain.
   */
  loadStateDict(
    dict: Record<string, { shape: readonly number[]; data: ArrayLike<number> } | Tensor>,
    { strict = true, ignore = [] as RegExp[] } = {},
  ): { missing: string[]; unexpected: string[] } {
    const params = new Map(this.namedParameters());
    const missing: string[] = [];
    const unexpected = Object.keys(dict).filter((k) => !params.has(k) && !ignore.some((r) => r.test(k)));
    for (const [name, p] of params) {
      const src = dict[name];
      if (src === undefined) {
        missing.push(name);
        continue;
      }
      if (!sameShape(src.shape, p.shape)) {
        throw new ShapeError(`loadStateDict: ${name} has shape ${fmt([...src.shape])} in the checkpoint, expected ${fmt(p.shape)}`);
      }
    }
    if (strict && (missing.length > 0 || unexpected.length > 0)) {
      throw new Error(
        `loadStateDict: checkpoint does not match the model: missing [${missing.join(", ")}], unexpected [${unexpected.join(", ")}]`,
      );
    }
    for (const [name, p] of params) {
      const src = dict[name];
      if (src === undefined) continue;
      const values = src instanceof Tensor ? src.toArray() : src.data;
      writeHost(p, values);
    }
    return { missing, unexpected };
  }

  train(on = true): this {
    const walk = (m: unknown): void => {
      if (m instanceof Module) {
        m.training = on;
        for (const v of Object.values(m)) walk(v);
      } else if (Array.isArray(m)) m.forEach(walk);
    };
    walk(this);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  zeroGrad(): void {
    for (const p of this.parameters()) {
      if (p.grad !== null) fill_(p.grad, 0);
    }
  }

  /** The device of the parameters (cpu for a module without any). */
  get device(): Device {
    return this.parameters()[0]?.device ?? resolveDevice("cpu");
  }

  /**
   * Moves every parameter (and its gradient) to a device in place: the same Tensor objects,
   * so an optimizer built before still holds them. Returns this module.
   */
  to(on: Device | string): this {
    const dev = resolveDevice(on);
    for (const p of this.parameters()) relocate(p, dev);
    return this;
  }
}

/** A fresh trainable tensor. */
export function parameter(shape: number[], init: (t: Tensor) => void): Tensor {
  const t = empty(shape);
  init(t);
  t.requiresGrad = true;
  return t;
}

/** AdamW groups: weight decay on matrices and embeddings (2+ dims), none on biases and norms. */
export function decayGroups(module: Module, weightDecay: number): { params: Tensor[]; weightDecay: number }[] {
  const decay: Tensor[] = [], noDecay: Tensor[] = [];
  for (const [, p] of module.namedParameters()) (p.ndim >= 2 ? decay : noDecay).push(p);
  return [
    { params: decay, weightDecay },
    { params: noDecay, weightDecay: 0 },
  ];
}
