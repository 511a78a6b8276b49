/**
 * POST /v1/embeddings (mean-pooled hidden states of a GPT or BERT base), and Plinth's own
 * classification endpoints:
 *   POST /v1/classifications  {model: "base:adapter", input}  with a probe, head, full or LoRA
 *                             classifier adapter -> label probabilities per input;
 *   POST /v1/zero-shot        {model: "base", input, labels, template?, verbalizers?} -> label
 *                             likelihood (causal LM) or cloze (masked LM), calibrated.
 *   POST /v1/zero-shot        {model: "clip-base", image: base64 or data URL, labels, templates?}
 *                             -> zero-shot image classification with an image-text (CLIP) base.
 */
import type { FastifyInstance } from "fastify";
import { embedTexts } from "../../adapt/probe.js";
import { classifyCausal, classifyMasked } from "../../adapt/zeroshot.js";
import { can, contextLength } from "../../models/registry.js";
import type { Registry } from "../../registry/index.js";
import { apiError } from "../errors.js";
import type { ModelHost } from "../host.js";
import { type Body, bodyOf, str, strings } from "../params.js";
import { zeroShotImage } from "../../eval/clip_images.js";
import type { AdapterEntry, ApiKey } from "../../registry/index.js";

const MAX_INPUTS = 256;

/** A trained classifier adapter (probe, head, LoRA or full with a score head) applied to its shared base. */
function classify(host: ModelHost, entry: AdapterEntry, texts: string[]): number[][] {
  const a = host.adapterData(entry);
  if (a.probe === null && (a.tensors["score.weight"] === undefined || a.tensors["score.bias"] === undefined)) {
    throw apiError("unsupported_model", `The adapter '${entry.base}:${entry.name}' (method ${entry.method}) is not a classifier.`, "model");
  }
  return host.applied(entry).predict(texts);
}

export function encoderRoutes(deps: { host: ModelHost; registry: Registry }) {
  const { host, registry } = deps;
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
    app.post("/v1/embeddings", async (req) => {
      const b = bodyOf(req.body);
      const model = str(b, "model", { required: true });
      const input = strings(b, "input", { required: true, max: MAX_INPUTS })!;
      const format = str(b, "encoding_format") ?? "float";
      if (format !== "float" && format !== "base64") throw apiError("invalid_value", `Invalid value for 'encoding_format': ${JSON.stringify(format)}; expected float or base64.`, "encoding_format");
      const r = host.resolve(req.apiKey.tenant, model);
      if (r.adapter !== null) throw apiError("unsupported_model", "Embeddings come from a base model; name the base without an adapter.", "model");
      const t0 = performance.now();
      const vectors = embedTexts(r.base.model, r.base.tok, input);
      const tokens = input.reduce((n, t) => n + Math.max(1, Math.min(r.base.tok.encode(t).length, contextLength(r.base.model))), 0);
      registry.keys.record({ keyId: req.apiKey.id, tenant: req.apiKey.tenant, kind: "embedding", model, promptTokens: tokens, computeSeconds: (performance.now() - t0) / 1000 });
      return {
        object: "list", model,
        data: vectors.map((v, index) => ({ object: "embedding", index, embedding: format === "base64" ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") : Array.from(v) })),
        usage: { prompt_tokens: tokens, total_tokens: tokens },
      };
    });

    app.post("/v1/classifications", async (req) => {
      const b = bodyOf(req.body);
      const model = str(b, "model", { required: true });
      const input = strings(b, "input", { required: true, max: MAX_INPUTS })!;
      const r = host.resolve(req.apiKey.tenant, model);
      if (r.adapter === null) throw apiError("invalid_value", "Classification needs a classifier adapter ('base:adapter'); for a base model use /v1/zero-shot with labels.", "model");
      const t0 = performance.now();
      const probs = classify(host, r.adapter, input);
      const tokens = input.reduce((n, t) => n + r.base.tok.encode(t).length, 0);
      registry.keys.record({ keyId: req.apiKey.id, tenant: req.apiKey.tenant, kind: "classification", model, promptTokens: tokens, computeSeconds: (performance.now() - t0) / 1000 });
      return result(model, r.adapter.labels, probs, tokens);
    });

    app.post("/v1/zero-shot", async (req) => {
      const b = bodyOf(req.body);
      const model = str(b, "model", { required: true });
      if (b.image !== undefined) return zeroShotImageRequest(req.apiKey, model, b);
      const input = strings(b, "input", { required: true, max: MAX_INPUTS })!;
      const labels = strings(b, "labels", { required: true, max: 64 })!;
      if (labels.length < 2) throw apiError("invalid_value", "Invalid value for 'labels': give at least 2 labels.", "labels");
      const v = b.verbalizers ?? Object.fromEntries(labels.map((l) => [l, ` ${l}`]));
      if (v === null || typeof v !== "object" || Object.values(v).some((s) => typeof s !== "string")) throw apiError("invalid_value", "Invalid value for 'verbalizers': expected an object mapping each label to a string.", "verbalizers");
      const r = host.resolve(req.apiKey.tenant, model);
      if (r.adapter !== null) throw apiError("unsupported_model", "Zero-shot classification runs on a base model; name the base without an adapter.", "model");
      const examples = input.map((text) => ({ text, label: labels[0] }));
      const t0 = performance.now();
      let probs: number[][];
      try {
        probs = can(r.base.model, "generate")
          ? classifyCausal(r.base.model, r.base.tok, labels, examples, { template: str(b, "template") ?? "{text}\nLabel:", verbalizers: v as Record<string, string>, calibrate: true }).probs
          : classifyMasked(r.base.model, r.base.tok, labels, examples, { template: str(b, "template") ?? "{text} It was [MASK].", verbalizers: v as Record<string, string>, calibrate: true }).probs;
      } catch (e) {
        if ((e as Error).name === "PromptError") throw apiError("invalid_value", (e as Error).message, "verbalizers");
        throw e;
      }
      const tokens = input.reduce((n, t) => n + r.base.tok.encode(t).length, 0);
      registry.keys.record({ keyId: req.apiKey.id, tenant: req.apiKey.tenant, kind: "classification", model, promptTokens: tokens, computeSeconds: (performance.now() - t0) / 1000 });
      return result(model, labels, probs, tokens);
    });
  };
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
