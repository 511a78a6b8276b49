// A training process for the crash and signal tests: trains a tiny GPT on random tokens
// into argv[2], checkpointing every 5 steps, until killed or signalled.
import { MemoryTokens } from "../../src/data/tokens.js";
import { GPT, gptConfig } from "../../src/models/gpt/index.js";
import { clm, languageModeling } from "../../src/train/language.js";
import { Trainer } from "../../src/train/trainer.js";
import { Rng } from "../../src/tensor/index.js";

const outDir = process.argv[2];
const rng = new Rng(7);
const tokens = Int32Array.from({ length: 20000 }, () => rng.int(64));
const model = new GPT(gptConfig({ vocab_size: 64, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 2 }), { seed: 3 });
const trainer = new Trainer({
  model, objective: languageModeling(model, clm, { train: new MemoryTokens(tokens.subarray(0, 18000)), val: new MemoryTokens(tokens.subarray(18000)), batch: 4, ctx: 32, evalWindows: 4 }),
  outDir, steps: 1_000_000, evalEvery: 1000, checkpointEvery: 5, keepLast: 2, quiet: true,
});
const resumed = trainer.resume();
process.stdout.write(`ready ${resumed ?? 0}\n`);
const result = await trainer.run();
process.stdout.write(`stopped ${result.stoppedBy} at ${result.steps}\n`);
