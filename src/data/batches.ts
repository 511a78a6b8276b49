/** Windows of a token stream: x = tokens[i, i+T), y = tokens[i+1, i+T+1). */
import { Tensor, empty } from "../tensor/tensor.js";

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
