/**
 * Self-supervised objectives: each turns raw token windows [B, T+1] into a batch and a loss.
 *   clm  next-token prediction (GPT): x = w[:, :T], y = w[:, 1:]
 *   mlm  masked LM (BERT): 15% of positions are targets; of those 80% become [MASK],
 *        10% a random token, 10% stay; the loss is over the targets only.
 */
import type { Rng } from "../tensor/rng.js";
import { Tensor, empty } from "../tensor/tensor.js";

export interface LossModel {
  /** Mean cross-entropy of the model on (inputs, targets); targets < 0 are ignored. */
  loss(inputs: Tensor, targets: Tensor): Tensor;
}

export interface Objective {
  readonly name: "clm" | "mlm";
  /** Builds (inputs, targets) from windows of T+1 tokens. */
  batch(windows: Int32Array, B: number, T: number, rng: Rng): { x: Tensor; y: Tensor };
}

export const clm: Objective = {
  name: "clm",
  batch(windows, B, T) {
    const x = empty([B, T], "int32"), y = empty([B, T], "int32");
    for (let b = 0; b < B; b++) {
      x.ids.set(windows.subarray(b * (T + 1), b * (T + 1) + T), b * T);
      y.ids.set(windows.subarray(b * (T + 1) + 1, (b + 1) * (T + 1)), b * T);
    }
    return { x, y };
  },
};

export function mlm({ maskToken, vocabSize, specialIds = [], rate = 0.15 }: { maskToken: number; vocabSize: number; specialIds?: number[]; rate?: number }): Objective {
  const special = new Set(specialIds);
  return {
    name: "mlm",
    batch(windows, B, T, rng) {
      const x = empty([B, T], "int32"), y = empty([B, T], "int32");
      const xi = x.ids, yi = y.ids;
      for (let b = 0; b < B; b++) {
        let any = false;
        for (let t = 0; t < T; t++) {
          const tok = windows[b * (T + 1) + t];
          const i = b * T + t;
          xi[i] = tok;
          yi[i] = -1;
          if (special.has(tok) || rng.uniform() >= rate) continue;
          any = true;
          yi[i] = tok;
          const r = rng.uniform();
          if (r < 0.8) xi[i] = maskToken;
          else if (r < 0.9) xi[i] = rng.int(vocabSize);
        }
        if (!any) {
          // Every row keeps at least one target so no batch is all-ignored (never a special id).
          const candidates: number[] = [];
          for (let t = 0; t < T; t++) if (!special.has(windows[b * (T + 1) + t])) candidates.push(t);
          if (candidates.length > 0) {
            const t = candidates[rng.int(candidates.length)];
            yi[b * T + t] = xi[b * T + t];
            xi[b * T + t] = maskToken;
          }
        }
      }
      return { x, y };
    },
  };
}
