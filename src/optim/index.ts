/**
 * Optimisers and schedules.
 *
 *     const opt = new AdamW(model.parameters(), { lr: 3e-4, weightDecay: 0.1 });
 *     loss.backward(); clipGradNorm(model.parameters(), 1.0); opt.step(); opt.zeroGrad();
 */
export { AdamW, clipGradNorm, cosineSchedule } from "./adamw.js";
export type { ParamGroup, AdamWOptions, ShardedMoments } from "./adamw.js";
