/** `plinth fill-mask` and `plinth embed`: use a pretrained encoder (BERT) or GPT's hidden states. */
import { parseArgs } from "node:util";
import { BPETextTokenizer, tokenizerFor } from "../data/tokenizer.js";
import { architectureOf, can, contextLength, embedSequences, loadModel, supportedTypes } from "../models/registry.js";
import { UsageError, oneOf, parseIntArg } from "./args.js";
import { WEIGHT_FORMATS } from "../models/inference_weights.js";

export const fillMaskHelp = `plinth fill-mask — predict the [MASK] tokens of a text with a masked-LM (BERT) model

Usage: plinth fill-mask --model <dir> --text "<text with [MASK]>" [--top-k 5]

Examples:
  plinth fill-mask --model runs/bert --text "Call me [MASK]."
  plinth fill-mask --model runs/bert --text "The [MASK] of the United States" --top-k 10`;

export const embedHelp = `plinth embed — sentence embeddings (mean-pooled hidden states) from a BERT or GPT model

Usage: plinth embed --model <dir> --text "<text>" [--text "<text>" ...] [--json] [--weights fp32|bf16|int8]

Prints each text's embedding norm and, for several texts, their cosine similarities;
--json prints one JSON object per text with the full vector. --weights bf16|int8 holds the
model's matrices in bf16 or int8 (symmetric per output channel) instead of float32.

Examples:
  plinth embed --model runs/bert --text "the whale" --text "the sea" --text "tax policy"
  plinth embed --model runs/default --text "interface Foo {}" --json`;

export function runFillMask(argv: string[]): void {
  const { values } = parseArgs({ args: argv, options: { model: { type: "string" }, text: { type: "string" }, "top-k": { type: "string" }, help: { type: "boolean", short: "h" } } });
  if (values.help) {
    console.log(fillMaskHelp);
    return;
  }
  if (values.model === undefined || values.text === undefined) throw new UsageError("--model and --text are required");
  const tok = tokenizerFor(values.model);
  if (!(tok instanceof BPETextTokenizer)) throw new Error(`fill-mask: ${values.model} has no tokenizer.json`);
  const mask = tok.special("[MASK]");
  const model = loadModel(values.model, { op: "fill-mask" });
  if (!can(model, "fill-mask")) throw new Error(`fill-mask: ${values.model} holds a ${architectureOf(model).modelType} model; fill-mask needs a masked LM: ${supportedTypes("fill-mask")}`);
  const ids = tok.bpe.encode(values.text);
  const positions = ids.flatMap((id, i) => (id === mask ? [i] : []));
  if (positions.length === 0) throw new UsageError(`--text has no [MASK] token: ${JSON.stringify(values.text)}`);
  if (ids.length > contextLength(model)) throw new UsageError(`--text is ${ids.length} tokens; the model reads at most ${contextLength(model)}`);
  for (const p of model.fillMask(ids, positions, { topK: parseIntArg("top-k", values["top-k"], 5, 1) })) {
    console.log(`[MASK] at token ${p.position}:`);
    p.ids.forEach((id, i) => console.log(`  ${(p.probs[i] * 100).toFixed(1).padStart(5)}%  ${JSON.stringify(tok.decode([id]))}`));
  }
}

export function runEmbed(argv: string[]): void {
  const { values } = parseArgs({ args: argv, options: { model: { type: "string" }, text: { type: "string", multiple: true }, json: { type: "boolean" }, weights: { type: "string" }, help: { type: "boolean", short: "h" } } });
  if (values.help) {
    console.log(embedHelp);
    return;
  }
  if (values.model === undefined || values.text === undefined) throw new UsageError("--model and at least one --text are required");
  const weights = oneOf("weights", values.weights ?? "fp32", WEIGHT_FORMATS);
  const tok = tokenizerFor(values.model);
  const seqs = values.text.map((t) => Array.from(tok.encode(t)));
  if (seqs.some((s) => s.length === 0)) throw new UsageError("--text must not be empty");
  const model = loadModel(values.model, { op: "embed", weights });
  if (!can(model, "embed")) throw new Error(`embed: model_type ${architectureOf(model).modelType} is not supported (${supportedTypes("embed")})`);
  // A text longer than the model's context is read by its last tokens.
  const vectors = embedSequences(model, seqs.map((s) => s.slice(-contextLength(model))));
  if (values.json) {
    values.text.forEach((text, i) => console.log(JSON.stringify({ text, embedding: Array.from(vectors[i], (v) => Number(v.toPrecision(6))) })));
    return;
  }
  const norm = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  values.text.forEach((t, i) => console.log(`${String(i + 1).padStart(2)}. dim ${vectors[i].length}, norm ${norm(vectors[i]).toFixed(3)}  ${JSON.stringify(t)}`));
  if (vectors.length > 1) {
    console.log("cosine similarity:");
    for (let i = 0; i < vectors.length; i++) {
      const row = vectors.map((v, j) => (vectors[i].reduce((s, x, k) => s + x * v[k], 0) / (norm(vectors[i]) * norm(v))).toFixed(3).padStart(7));
      console.log(`  ${String(i + 1).padStart(2)} ${row.join("")}`);
    }
  }
}
