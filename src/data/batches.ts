/** Random training windows from a token stream: x = tokens[i, i+T), y = tokens[i+1, i+T+1). */
import { Rng } from "../tensor/rng.js";
import { Tensor, empty } from "../tensor/tensor.js";

export function randomWindows(tokens: Int32Array, batch: number, ctx: number, rng: Rng): { x: Tensor; y: Tensor } {
  if (tokens.length < ctx + 1) {
    throw new RangeError(`randomWindows: the stream has ${tokens.length} tokens, fewer than context + 1 = ${ctx + 1}`);
  }
  const x = empty([batch, ctx], "int32"), y = empty([batch, ctx], "int32");
  const xd = x.ids, yd = y.ids;
  for (let b = 0; b < batch; b++) {
    const start = rng.int(tokens.length - ctx);
    xd.set(tokens.subarray(start, start + ctx), b * ctx);
    yd.set(tokens.subarray(start + 1, start + ctx + 1), b * ctx);
  }
  return { x, y };
}

/** Consecutive non-overlapping windows covering the stream (for evaluation), `batch` at a time. */
export function* sequentialWindows(tokens: Int32Array, batch: number, ctx: number, maxWindows = Infinity): Generator<{ x: Tensor; y: Tensor }> {
  const windows = Math.min(maxWindows, Math.floor((tokens.length - 1) / ctx));
  for (let w0 = 0; w0 < windows; w0 += batch) {
    const n = Math.min(batch, windows - w0);
    const x = empty([n, ctx], "int32"), y = empty([n, ctx], "int32");
    for (let b = 0; b < n; b++) {
      const start = (w0 + b) * ctx;
      x.ids.set(tokens.subarray(start, start + ctx), b * ctx);
      y.ids.set(tokens.subarray(start + 1, start + ctx + 1), b * ctx);
    }
    yield { x, y };
  }
}
