/** `plinth generate`: sample a continuation from a saved GPT. */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { tokenizerFor } from "../data/tokenizer.js";
import { GPT, generate, loadGPT } from "../models/gpt/index.js";
import { loadAdapted } from "../adapt/apply.js";
import { chatPromptIds } from "../tasks/chat.js";
import { chatTemplateFor } from "../tokenizer/chat_template.js";
import { UsageError, oneOf, parseFloatArg, parseIntArg } from "./args.js";
import { WEIGHT_FORMATS, useInferenceWeights } from "../models/inference_weights.js";

export const generateHelp = `plinth generate — continue a prompt with a saved GPT

Usage: plinth generate --model <dir> --prompt <text> [--max-tokens 200] [--temperature 0.8] [--top-k 40] [--top-p 1] [--seed 0]
       plinth generate --model <dir> [--adapter <dir>] --chat <message> [--system <text>] [...]

  --model        folder with config.json, model.safetensors and tokenizer.json (e.g. runs/default);
                 without tokenizer.json the model is read as byte-level
  --prompt       text to continue
  --max-tokens   new tokens to generate (default 200)
  --temperature  0 = greedy (default 0.8)
  --top-k        keep the k most likely tokens (default 40; 0 = all)
  --top-p        nucleus sampling threshold (default 1)
  --chat         a user message: rendered with the model's chat template (tokenizer_config.json's
                 chat_template, else the default) and answered as the assistant, up to end of text
  --system       a system message before it
  --adapter      a generative adapter (plinth adapt --objective lm) applied to the model
  --weights      fp32 (default), bf16 or int8: the model's matrices for decoding (int8: symmetric
                 per output channel; decoding reads every weight once a token, so fewer bytes are faster)

Examples:
  plinth generate --model runs/default --prompt "Call me "
  plinth generate --model runs/code --prompt "export function " --temperature 0
  plinth generate --model runs/small --adapter runs/chat-lora --chat "define: harbor" --temperature 0`;

export function runGenerate(argv: string[]): void {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: "string" }, prompt: { type: "string" }, "max-tokens": { type: "string" }, temperature: { type: "string" },
      "top-k": { type: "string" }, "top-p": { type: "string" }, seed: { type: "string" }, help: { type: "boolean", short: "h" },
      chat: { type: "string" }, system: { type: "string" }, adapter: { type: "string" }, weights: { type: "string" },
    },
  });
  if (values.help) {
    console.log(generateHelp);
    return;
  }
  if (values.model === undefined) throw new UsageError("--model is required");
  if (values.prompt === undefined && values.chat === undefined) throw new UsageError("--prompt (or --chat) is required");
  if (values.prompt !== undefined && values.chat !== undefined) throw new UsageError("give --prompt or --chat, not both");
  // Every flag is checked before the model is read.
  const sampling = {
    maxNewTokens: parseIntArg("max-tokens", values["max-tokens"], 200, 1),
    temperature: parseFloatArg("temperature", values.temperature, 0.8),
    topK: parseIntArg("top-k", values["top-k"], 40),
    topP: parseFloatArg("top-p", values["top-p"], 1),
    seed: parseIntArg("seed", values.seed, 0),
  };
  if (sampling.temperature < 0) throw new UsageError(`--temperature must be >= 0 (0 = greedy), got "${values.temperature}"`);
  if (!(sampling.topP > 0 && sampling.topP <= 1)) throw new UsageError(`--top-p must be in (0, 1], got "${values["top-p"]}"`);
  const weights = oneOf("weights", values.weights ?? "fp32", WEIGHT_FORMATS);
  const adapted = values.adapter !== undefined ? loadAdapted(values.adapter, values.model) : null;
  const model = adapted !== null ? (adapted.body as GPT) : loadGPT(values.model);
  if (weights !== "fp32") useInferenceWeights(model, weights);
  const meta = join(values.model, "model.safetensors");
  if (!existsSync(meta)) throw new Error(`${meta} is missing`);
  // An adapter's tokenizer: the base's with the tokens the adapter added (its chat template's role markers).
  const tok = adapted?.tok ?? tokenizerFor(values.model);
  if (model.vocabSize !== tok.vocabSize) {
    throw new Error(`generate: the model has ${model.vocabSize} token ids but its tokenizer has ${tok.vocabSize}: mismatched tokenizer.json?`);
  }
  if (values.chat !== undefined) {
    const messages = [...(values.system !== undefined ? [{ role: "system", content: values.system }] : []), { role: "user", content: values.chat }];
    const prompt = chatPromptIds(chatTemplateFor(values.model, { write: true }), tok, messages);
    if (prompt.length >= model.config.n_positions) throw new UsageError(`--chat: the rendered chat is ${prompt.length} tokens, over the model's context of ${model.config.n_positions}`);
    const { tokens, finishReason } = generate(model, prompt, { ...sampling, maxNewTokens: Math.min(sampling.maxNewTokens, model.config.n_positions - prompt.length), stopTokens: [tok.eot] });
    process.stdout.write(tok.decode(tokens) + "\n");
    if (finishReason !== "stop") process.stderr.write("(stopped at --max-tokens before the end of the reply)\n");
    return;
  }
  const text = values.prompt!;
  const { tokens, finishReason } = generate(model, Array.from(tok.encode(text)), { ...sampling, stopTokens: [tok.eot] });
  process.stdout.write(text + tok.decode(tokens) + "\n");
  if (finishReason === "stop") process.stderr.write("(stopped at end of text)\n");
}
