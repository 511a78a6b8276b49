/**
 * POST /v1/embeddings (mean-pooled hidden states of a GPT or BERT base), and Plinth's own
 * classification endpoints:
 *   POST /v1/classifications  {model: "base:adapter", input}  with a probe, head, full or LoRA
 *                             classifier adapter -> label probabilities per input;
 *   POST /v1/zero-shot        {model: "base", input, labels, template?, verbalizers?} -> label
 *                             likelihood (causal LM) or cloze (masked LM), calibrated.
 *   POST /v1/zero-shot        {model: "clip-base", image: base64 or data URL, labels, templates?}
 *                             -> zero-shot image classification with an image-text (CLIP) base.
 *
 * All of it, CLIP's text and vision towers included, runs on the encoder queue
 * (encoder_queue.ts): in pieces of bounded time, tenants taking turns, generation first, and
 * dropped when the client goes away. A request is bounded before it runs: at most `maxInputs`
 * inputs and `maxLabels` labels; zero-shot at most `maxPairs` inputs × labels; at most
 * `maxTokens` tokens read by the model (after truncation to its context; zero-shot counts each
 * label's sequence). Over a limit is a 400 naming the parameter. The tokens a request bills
 * are reserved against its key's quota once its inputs are tokenized and before any forward
 * (quota.ts: a 429 if they do not fit), and settled when it ends.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { embedTextsSteps } from "../../adapt/probe.js";
import type { PieceOptions, PiecePlan, Steps } from "../../adapt/steps.js";
import { classifyCausalSteps, classifyMaskedSteps } from "../../adapt/zeroshot.js";
import { can } from "../../models/registry.js";
import type { Registry } from "../../registry/index.js";
import { EncoderAbortError, type EncoderOutcome, type EncoderQueue } from "../encoder_queue.js";
import { apiError } from "../errors.js";
import type { ModelHost } from "../host.js";
import { type Body, bodyOf, num, str, strings } from "../params.js";
import { acceptOnly } from "../openai_params.js";
import { type RequestMeter, admitPrompt } from "../quota.js";
import { zeroShotImageSteps } from "../clip_steps.js";
import { decodeImage } from "../../data/images.js";
import { stringifyInSlices } from "../json_slices.js";
import type { AdapterEntry, UsageKind } from "../../registry/index.js";

export interface EncoderLimits {
  /** Inputs of one embeddings, classifications or zero-shot request (default 256). */
  maxInputs?: number;
  /** Labels of one /v1/zero-shot request (default 64). */
  maxLabels?: number;
  /** Prompt templates of one image zero-shot request (default 16). */
  maxTemplates?: number;
  /** Inputs × labels of one /v1/zero-shot request (default 4,096). */
  maxPairs?: number;
  /** Tokens the model reads for one request, after truncation to its context (default 262,144). */
  maxTokens?: number;
}

export const DEFAULT_ENCODER_LIMITS: Required<EncoderLimits> = { maxInputs: 256, maxLabels: 64, maxTemplates: 16, maxPairs: 4096, maxTokens: 262_144 };

/** Methods whose adapters classify without a probe or a score head: prompts, and class means or labeled neighbours of the embeddings. */
const HEADLESS_CLASSIFIERS = new Set(["zero-shot", "few-shot", "prototype", "knn"]);

/** A classifier adapter (probe, setfit, head, LoRA or full with a score head; prototype, knn; a prompt) applied to its shared base. */
async function classifier(host: ModelHost, entry: AdapterEntry) {
  const a = await host.adapterData(entry);
  const headless = HEADLESS_CLASSIFIERS.has(a.manifest.method) && a.config.objective !== "lm";
  if (!headless && a.probe === null && (a.tensors["score.weight"] === undefined || a.tensors["score.bias"] === undefined)) {
    throw apiError("unsupported_model", `The adapter '${entry.base}:${entry.name}' (method ${entry.method}) is not a classifier.`, "model");
  }
  return host.applied(entry);
}

/** Aborted when the client disconnects before the reply is written. */
function disconnectSignal(req: FastifyRequest, reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  reply.raw.on("close", () => {
    if (!reply.raw.writableFinished) ac.abort();
  });
  req.raw.on("aborted", () => ac.abort());
  return ac.signal;
}

export function encoderRoutes(deps: { host: ModelHost; registry: Registry; queue: EncoderQueue; limits?: EncoderLimits }) {
  const { host, registry, queue } = deps;
  const limits = { ...DEFAULT_ENCODER_LIMITS, ...deps.limits };
  const tokenLimit = (plan: PiecePlan) => {
    if (plan.tokens > limits.maxTokens) {
      throw apiError("invalid_value", `Invalid value for 'input': the model would read ${plan.tokens.toLocaleString("en-US")} tokens (${plan.sequences.toLocaleString("en-US")} sequences after truncation to its context); at most ${limits.maxTokens.toLocaleString("en-US")} per request. Send fewer or shorter inputs${plan.sequences > 256 ? " or fewer labels" : ""}, or split the request.`, "input");
    }
  };
  /**
   * Runs work on the encoder queue; a client that leaves drops the rest of it. Once the work's
   * plan is known (its inputs tokenized, before any forward) the tokens it bills are reserved
   * against the key's quota (a 429 if they do not fit, and nothing runs); the end settles them
   * with the compute time, and a request that fails or is dropped bills nothing.
   */
  const enqueue = async <R>(req: FastifyRequest, reply: FastifyReply, w: { model: string; billed: string; kind: UsageKind; bill: (plan: PiecePlan) => number }, steps: (p: PieceOptions) => Steps<R>): Promise<EncoderOutcome<R> & { tokens: number }> => {
    let meter: RequestMeter | null = null;
    let settled = false;
    try {
      const out = await queue.run({
        tenant: req.apiKey.tenant, model: w.model, steps, signal: disconnectSignal(req, reply),
        admit: async (plan) => {
          tokenLimit(plan);
          meter = await admitPrompt(registry, req.apiKey, { kind: w.kind, model: w.billed, tokens: w.bill(plan) });
        },
      });
      const tokens = out.plan === null ? 0 : w.bill(out.plan);
      if (meter === null) await registry.keys.record({ keyId: req.apiKey.id, tenant: req.apiKey.tenant, kind: w.kind, model: w.billed, computeSeconds: out.computeSeconds });
      else await (meter as RequestMeter).settle({ promptTokens: tokens, computeSeconds: out.computeSeconds });
      settled = true;
      return { ...out, tokens };
    } catch (e) {
      if ((e as Error).name === "PromptError") throw apiError("invalid_value", (e as Error).message, "verbalizers");
      if ((e as Error).name === "ImageError") throw apiError("invalid_value", (e as Error).message, "image");
      throw e;
    } finally {
      if (!settled) await (meter as RequestMeter | null)?.settle();
    }
  };
  const zeroShotImageRequest = async (req: FastifyRequest, reply: FastifyReply, model: string, b: Body) => {
    const image = str(b, "image", { required: true });
    const labels = strings(b, "labels", { required: true, max: limits.maxLabels })!;
    if (labels.length < 2) throw apiError("invalid_value", "Invalid value for 'labels': give at least 2 labels.", "labels");
    const templates = strings(b, "templates", { max: limits.maxTemplates }) ?? ["a photo of {label}.", "{label}"];
    if (templates.some((t) => !t.includes("{label}"))) throw apiError("invalid_value", "Invalid value for 'templates': each template needs a {label} field.", "templates");
    const run = await host.clip(model);
    const bytes = Buffer.from(image.replace(/^data:[^;,]*;base64,/, ""), "base64");
    let rgb: Uint8Array;
    try {
      rgb = await decodeImage({ name: "the uploaded image", bytes }, run.model.config.vision_config.image_size);
    } catch (e) {
      if ((e as Error).name === "ImageError") throw apiError("invalid_value", (e as Error).message, "image");
      throw e;
    }
    // The text and vision towers run on the encoder queue, in pieces, like the text routes.
    const out = await enqueue(req, reply, { model, billed: model, kind: "classification", bill: (p) => p.inputTokens }, (p) => zeroShotImageSteps(run, rgb, labels, templates, p));
    return result(model, labels, [out.value], out.tokens);
  };
  return async (app: FastifyInstance): Promise<void> => {
    // A client gone before its reply: nothing can be written, and nothing is billed (its work was dropped).
    const gone = (reply: FastifyReply) => {
      reply.hijack();
      reply.raw.destroy();
      return reply;
    };

    app.post("/v1/embeddings", async (req, reply) => {
      const b = bodyOf(req.body);
      acceptOnly(b, "embeddings");
      const model = str(b, "model", { required: true });
      const input = strings(b, "input", { required: true, max: limits.maxInputs })!;
      const format = str(b, "encoding_format") ?? "float";
      if (format !== "float" && format !== "base64") throw apiError("invalid_value", `Invalid value for 'encoding_format': ${JSON.stringify(format)}; expected float or base64.`, "encoding_format");
      const r = await host.resolve(req.apiKey.tenant, model);
      if (r.adapter !== null) throw apiError("unsupported_model", "Embeddings come from a base model; name the base without an adapter.", "model");
      const width = (r.base.model.config as { n_embd?: number; hidden_size?: number }).n_embd ?? (r.base.model.config as { hidden_size?: number }).hidden_size ?? Infinity;
      const dimensions = b.dimensions === undefined || b.dimensions === null ? null : num(b, "dimensions", { min: 1, max: width, integer: true, fallback: width });
      let out: EncoderOutcome<Float32Array[]> & { tokens: number };
      try {
        out = await enqueue(req, reply, { model: r.base.entry.name, billed: model, kind: "embedding", bill: (p) => p.tokens }, (p) => embedTextsSteps(r.base.model, r.base.tok, input, {}, p));
      } catch (e) {
        if (e instanceof EncoderAbortError) return gone(reply);
        throw e;
      }
      const tokens = out.tokens;
      if (dimensions !== null) out = { ...out, value: out.value.map((v) => shorten(v, dimensions)) };
      // Up to 256 × the base's width of numbers: written in slices, so the event loop stays free for chats.
      const data = out.value.map((v, index) => ({ object: "embedding", index, embedding: format === "base64" ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") : Array.from(v) }));
      const text = await stringifyInSlices({ object: "list", model }, "data", data, { usage: { prompt_tokens: tokens, total_tokens: tokens } });
      return reply.type("application/json; charset=utf-8").send(text);
    });

    app.post("/v1/classifications", async (req, reply) => {
      const b = bodyOf(req.body);
      const model = str(b, "model", { required: true });
      const input = strings(b, "input", { required: true, max: limits.maxInputs })!;
      const r = await host.resolve(req.apiKey.tenant, model);
      if (r.adapter === null) throw apiError("invalid_value", "Classification needs a classifier adapter ('base:adapter'); for a base model use /v1/zero-shot with labels.", "model");
      const clf = await classifier(host, r.adapter);
      let out: EncoderOutcome<number[][]> & { tokens: number };
      try {
        out = await enqueue(req, reply, { model: r.base.entry.name, billed: model, kind: "classification", bill: (p) => p.inputTokens }, (p) => clf.predictSteps(input, p));
      } catch (e) {
        if (e instanceof EncoderAbortError) return gone(reply);
        throw e;
      }
      return result(model, r.adapter.labels, out.value, out.tokens);
    });

    app.post("/v1/zero-shot", async (req, reply) => {
      const b = bodyOf(req.body);
      const model = str(b, "model", { required: true });
      if (b.image !== undefined) {
        try {
          return await zeroShotImageRequest(req, reply, model, b);
        } catch (e) {
          if (e instanceof EncoderAbortError) return gone(reply);
          throw e;
        }
      }
      const input = strings(b, "input", { required: true, max: limits.maxInputs })!;
      const labels = strings(b, "labels", { required: true, max: limits.maxLabels })!;
      if (labels.length < 2) throw apiError("invalid_value", "Invalid value for 'labels': give at least 2 labels.", "labels");
      if (input.length * labels.length > limits.maxPairs) {
        throw apiError("invalid_value", `Invalid value for 'labels': ${input.length} inputs × ${labels.length} labels is ${(input.length * labels.length).toLocaleString("en-US")} scorings; at most ${limits.maxPairs.toLocaleString("en-US")} per request. Send fewer inputs or labels, or split the request.`, "labels");
      }
      const v = b.verbalizers ?? Object.fromEntries(labels.map((l) => [l, ` ${l}`]));
      if (v === null || typeof v !== "object" || Object.values(v).some((s) => typeof s !== "string")) throw apiError("invalid_value", "Invalid value for 'verbalizers': expected an object mapping each label to a string.", "verbalizers");
      const r = await host.resolve(req.apiKey.tenant, model);
      if (r.adapter !== null) throw apiError("unsupported_model", "Zero-shot classification runs on a base model; name the base without an adapter.", "model");
      const examples = input.map((text) => ({ text, label: labels[0] }));
      const template = str(b, "template");
      const verbalizers = v as Record<string, string>;
      const { model: m, tok } = r.base;
      const steps = can(m, "generate")
        ? (p: PieceOptions) => classifyCausalSteps(m, tok, labels, examples, { template: template ?? "{text}\nLabel:", verbalizers, calibrate: true }, p)
        : (p: PieceOptions) => classifyMaskedSteps(m, tok, labels, examples, { template: template ?? "{text} It was [MASK].", verbalizers, calibrate: true }, p);
      let out: EncoderOutcome<{ probs: number[][] }> & { tokens: number };
      try {
        out = await enqueue(req, reply, { model: r.base.entry.name, billed: model, kind: "classification", bill: (p) => p.inputTokens }, steps);
      } catch (e) {
        if (e instanceof EncoderAbortError) return gone(reply);
        throw e;
      }
      return result(model, labels, out.value.probs, out.tokens);
    });
  };
}

/**
 * `dimensions`: the first d dimensions of the mean-pooled embedding, L2-normalised again (as
 * OpenAI's shortened v3 embeddings are unit vectors); a zero vector stays zero.
 */
export function shorten(v: Float32Array, d: number): Float32Array {
  const out = v.slice(0, d);
  let ss = 0;
  for (const x of out) ss += x * x;
  const norm = Math.sqrt(ss);
  if (norm > 0) for (let i = 0; i < out.length; i++) out[i] /= norm;
  return out;
}

function result(model: string, labels: string[], probs: number[][], tokens: number) {
  return {
    object: "list", model,
    data: probs.map((p, index) => {
      const best = p.indexOf(Math.max(...p));
      return { object: "classification", index, label: labels[best], scores: Object.fromEntries(labels.map((l, j) => [l, p[j]])) };
    }),
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  };
}
