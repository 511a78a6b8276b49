/**
 * Neural-network modules. Parameter names follow Hugging Face checkpoints.
 *
 *     const ln = new LayerNorm(256);
 *     const y = ln.forward(x);
 *     ln.stateDict(); // { weight, bias }
 */
export { Module, decayGroups, parameter } from "./module.js";
export { Linear, Embedding, LayerNorm, Dropout, CausalSelfAttention, MLP, Block } from "./layers.js";
export type { BlockConfig } from "./layers.js";
