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
 * Text work runs on the encoder queue (encoder_queue.ts): in pieces of bounded time, tenants
 * taking turns, generation first, and dropped when the client goes away. A request is bounded
 * before it runs: at most 256 inputs; zero-shot at most `maxPairs` inputs × labels; at most
 * `maxTokens` tokens read by the model (after truncation to its context; zero-shot counts each
 * label's sequence). Over a limit is a 400 naming the parameter.
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
import { zeroShotImage } from "../../eval/clip_images.js";
import type { AdapterEntry, ApiKey } from "../../registry/index.js";

const MAX_INPUTS = 256;

export interface EncoderLimits {
  /** Inputs × labels of one /v1/zero-shot request (default 4,096). */
  maxPairs?: number;
  /** Tokens the model reads for one request, after truncation to its context (default 262,144). */
  maxTokens?: number;
}

export const DEFAULT_ENCODER_LIMITS: Required<EncoderLimits> = { maxPairs: 4096, maxTokens: 262_144 };

/** A trained classifier adapter (probe, head, LoRA or full with a score head) applied to its shared base. */
function classifier(host: ModelHost, entry: AdapterEntry) {
  const a = host.adapterData(entry);
  if (a.probe === null && (a.tensors["score.weight"] === undefined || a.tensors["score.bias"] === undefined)) {
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
  /** Runs text work on the encoder queue; a client that leaves drops the rest of it. */
  const enqueue = async <R>(req: FastifyRequest, reply: FastifyReply, model: string, steps: (p: PieceOptions) => Steps<R>): Promise<EncoderOutcome<R>> => {
    try {
      return await queue.run({ tenant: req.apiKey.tenant, model, steps, signal: disconnectSignal(req, reply), admit: tokenLimit });
    } catch (e) {
      if ((e as Error).name === "PromptError") throw apiError("invalid_value", (e as Error).message, "verbalizers");
      throw e;
    }
  };
  const zeroShotImageRequest = async (key: ApiKey, model: string, b: Body) => {
    const image = str(b, "image", { required: true });
    const labels = strings(b, "labels", { required: true, max: 64 })!;
    if (labels.length < 2) throw apiError("invalid_value", "Invalid value for 'labels': give at least 2 labels.", "labels");
    const templates = strings(b, "templates", { max: 16 }) ?? ["a photo of {label}.", "{label}"];
    if (templates.some((t) => !t.includes("{label}"))) throw apiError("invalid_value", "Invalid value for 'templates': each template needs a {label} field.", "templates");
    const run = host.clip(model);
    const bytes = Buffer.from(image.replace(/^data:[^;,]*;base64,/, ""), "base64");
    const t0 = performance.now();
    let ranked;
    try {
      ranked = await zeroShotImage(run, { name: "the uploaded image", bytes }, labels, templates);
    } catch (e) {
      if ((e as Error).name === "ImageError") throw apiError("invalid_value", (e as Error).message, "image");
      throw e;
    }
    registry.keys.record({ keyId: key.id, tenant: key.tenant, kind: "classification", model, computeSeconds: (performance.now() - t0) / 1000 });
    const scores = Object.fromEntries(ranked.map((r) => [r.label, r.prob]));
    return result(model, labels, [labels.map((l) => scores[l])], 0);
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
      const input = strings(b, "input", { required: true, max: MAX_INPUTS })!;
      const format = str(b, "encoding_format") ?? "float";
      if (format !== "float" && format !== "base64") throw apiError("invalid_value", `Invalid value for 'encoding_format': ${JSON.stringify(format)}; expected float or base64.`, "encoding_format");
      const r = host.resolve(req.apiKey.tenant, model);
      if (r.adapter !== null) throw apiError("unsupported_model", "Embeddings come from a base model; name the base without an adapter.", "model");
      const width = (r.base.model.config as { n_embd?: number; hidden_size?: number }).n_embd ?? (r.base.model.config as { hidden_size?: number }).hidden_size ?? Infinity;
      const dimensions = b.dimensions === undefined || b.dimensions === null ? null : num(b, "dimensions", { min: 1, max: width, integer: true, fallback: width });
      let out: EncoderOutcome<Float32Array[]>;
      try {
        out = await enqueue(req, reply, r.base.entry.name, (p) => embedTextsSteps(r.base.model, r.base.tok, input, {}, p));
      } catch (e) {
        if (e instanceof EncoderAbortError) return gone(reply);
        throw e;
      }
      const tokens = out.plan?.tokens ?? 0;
      registry.keys.record({ keyId: req.apiKey.id, tenant: req.apiKey.tenant, kind: "embedding", model, promptTokens: tokens, computeSeconds: out.computeSeconds });
      if (dimensions !== null) out = { ...out, value: out.value.map((v) => shorten(v, dimensions)) };
      return {
        object: "list", model,
        data: out.value.map((v, index) => ({ object: "embedding", index, embedding: format === "base64" ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") : Array.from(v) })),
        usage: { prompt_tokens: tokens, total_tokens: tokens },
      };
    });

    app.post("/v1/classifications", async (req, reply) => {
      const b = bodyOf(req.body);
      const model = str(b, "model", { required: true });
      const input = strings(b, "input", { required: true, max: MAX_INPUTS })!;
      const r = host.resolve(req.apiKey.tenant, model);
      if (r.adapter === null) throw apiError("invalid_value", "Classification needs a classifier adapter ('base:adapter'); for a base model use /v1/zero-shot with labels.", "model");
      const clf = classifier(host, r.adapter);
      let out: EncoderOutcome<number[][]>;
      try {
        out = await enqueue(req, reply, r.base.entry.name, (p) => clf.predictSteps(input, p));
      } catch (e) {
        if (e instanceof EncoderAbortError) return gone(reply);
        throw e;
      }
      const tokens = out.plan?.inputTokens ?? 0;
      registry.keys.record({ keyId: req.apiKey.id, tenant: req.apiKey.tenant, kind: "classification", model, promptTokens: tokens, computeSeconds: out.computeSeconds });
      return result(model, r.adapter.labels, out.value, tokens);
    });

    app.post("/v1/zero-shot", async (req, reply) => {
      const b = bodyOf(req.body);
      const model = str(b, "model", { required: true });
      if (b.image !== undefined) return zeroShotImageRequest(req.apiKey, model, b);
      const input = strings(b, "input", { required: true, max: MAX_INPUTS })!;
      const labels = strings(b, "labels", { required: true, max: 64 })!;
      if (labels.length < 2) throw apiError("invalid_value", "Invalid value for 'labels': give at least 2 labels.", "labels");
      if (input.length * labels.length > limits.maxPairs) {
        throw apiError("invalid_value", `Invalid value for 'labels': ${input.length} inputs × ${labels.length} labels is ${(input.length * labels.length).toLocaleString("en-US")} scorings; at most ${limits.maxPairs.toLocaleString("en-US")} per request. Send fewer inputs or labels, or split the request.`, "labels");
      }
      const v = b.verbalizers ?? Object.fromEntries(labels.map((l) => [l, ` ${l}`]));
      if (v === null || typeof v !== "object" || Object.values(v).some((s) => typeof s !== "string")) throw apiError("invalid_value", "Invalid value for 'verbalizers': expected an object mapping each label to a string.", "verbalizers");
      const r = host.resolve(req.apiKey.tenant, model);
      if (r.adapter !== null) throw apiError("unsupported_model", "Zero-shot classification runs on a base model; name the base without an adapter.", "model");
      const examples = input.map((text) => ({ text, label: labels[0] }));
      const template = str(b, "template");
      const verbalizers = v as Record<string, string>;
      const { model: m, tok } = r.base;
      const steps = can(m, "generate")
        ? (p: PieceOptions) => classifyCausalSteps(m, tok, labels, examples, { template: template ?? "{text}\nLabel:", verbalizers, calibrate: true }, p)
        : (p: PieceOptions) => classifyMaskedSteps(m, tok, labels, examples, { template: template ?? "{text} It was [MASK].", verbalizers, calibrate: true }, p);
      let out: EncoderOutcome<{ probs: number[][] }>;
      try {
        out = await enqueue(req, reply, r.base.entry.name, steps);
      } catch (e) {
        if (e instanceof EncoderAbortError) return gone(reply);
        throw e;
      }
      const tokens = out.plan?.inputTokens ?? 0;
      registry.keys.record({ keyId: req.apiKey.id, tenant: req.apiKey.tenant, kind: "classification", model, promptTokens: tokens, computeSeconds: out.computeSeconds });
      return result(model, labels, out.value.probs, tokens);
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
