/**
 * An adapter applied to its base, ready to classify: whatever the method (zero-/few-shot prompt,
 * probe, prototype, k-NN, SetFit, head, LoRA, full), the result is the same shape — labels, the adapted body (for probes
 * of its language-model behaviour) and predict(texts) -> label probabilities. Applying an adapter
 * to a base other than its own is refused (loadAdapter checks the content hash).
 *
 * This is the one place an adapter becomes usable: the CLI, evaluation and audit call
 * `loadAdapted` (a base of their own, which the adapter may change: LoRA merged, full weights
 * loaded); the server calls `applyAdapter` on the base every request shares, which is never
 * changed (LoRA runs through the forward context, a full fine-tune gets its own copy).
 *
 *     const a = loadAdapted("runs/sentiment-lora", "runs/default");
 *     a.predict(["A wonderful film."]);   // [[0.08, 0.92]]
 */
import { toFloat32, type RawTensor } from "../io/safetensors.js";
import { type Pooling, can, isPooling, poolingOf } from "../models/registry.js";
import type { ForwardContext } from "../nn/context.js";
import { neighbourProbs, neighboursFromTensors, prototypeProbs, prototypesFromTensors } from "./neighbours.js";
import { embedThrough, embedThroughSteps } from "./setfit.js";
import { type AdapterManifest, AdapterError, loadAdapter, probeFromTensors } from "./artifact.js";
import { type LoadedBase, loadBase } from "./base.js";
import { SequenceClassifier } from "./classifier.js";
import { applyLoRA } from "./lora.js";
import { ADDED_ROWS, bindLoRA, loraWeights } from "./lora_factors.js";
import { type TextTokenizer, withAddedTokens } from "../data/tokenizer.js";
import type { GPT } from "../models/gpt/model.js";
import { embedTexts, embedTextsSteps, probeProbs, type Encoder } from "./probe.js";
import type { PieceOptions, Steps } from "./steps.js";
import { classifyCausal, classifyCausalSteps, classifyMasked, classifyMaskedSteps } from "./zeroshot.js";

export interface AdaptedModel {
  manifest: AdapterManifest;
  labels: string[];
  /** The base with the adapter's weight changes (LoRA merged, full fine-tune loaded); the base itself for prompt, probe and head adapters. */
  body: Encoder;
  tok: TextTokenizer;
  predict(texts: readonly string[]): number[][];
  /** predict in bounded pieces (steps.ts), for a server that interleaves other work between them. */
  predictSteps(texts: readonly string[], pieces?: PieceOptions): Steps<number[][]>;
}

/** The tokens a generative adapter added to its base's vocabulary (config.added_tokens; none for older adapters). */
export function addedTokensOf(cfg: Record<string, unknown>, adapterDir: string): string[] {
  const v = cfg.added_tokens;
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((t) => typeof t === "string" && t !== "")) throw new AdapterError(`adapter ${adapterDir}: config.added_tokens must be a list of non-empty strings`);
  return v as string[];
}

function tensor(tensors: Record<string, RawTensor>, name: string, dir: string): RawTensor {
  const t = tensors[name];
  if (t === undefined) throw new AdapterError(`adapter ${dir}: tensor ${name} is missing`);
  return t;
}

function headOf(clf: SequenceClassifier, tensors: Record<string, RawTensor>, dir: string): void {
  const w = tensor(tensors, "score.weight", dir), b = tensor(tensors, "score.bias", dir);
  const want = [...clf.score.weight.shape];
  if (w.shape.join() !== want.join()) throw new AdapterError(`adapter ${dir}: score.weight has shape [${w.shape}], expected [${want}] (hidden size x labels)`);
  clf.score.weight.data.set(toFloat32(w));
  clf.score.bias!.data.set(toFloat32(b));
}

const num = (v: unknown, fallback: number): number => (typeof v === "number" && Number.isFinite(v) ? v : fallback);

/** The pooling the adapter was made with (its config), else the base's own. */
function poolingIn(cfg: Record<string, unknown>, model: Encoder): Pooling {
  return isPooling(cfg.pooling) ? cfg.pooling : poolingOf(model);
}

/** Loads the adapter and a base of its own, and applies the one to the other (the base may be changed). */
export function loadAdapted(adapterDir: string, baseDir: string): AdaptedModel {
  return applyAdapter(loadBase(baseDir), loadAdapter(adapterDir, baseDir), adapterDir, { owned: true });
}

/**
 * Applies a loaded adapter (manifest and tensors, checked against this base by loadAdapter) to
 * a loaded base. `owned`: the base is the caller's own and may be changed (LoRA merged into its
 * weights, a full fine-tune's weights loaded into it); otherwise it is shared and left as it is.
 */
export function applyAdapter(base: LoadedBase, adapter: { manifest: AdapterManifest; tensors: Record<string, RawTensor> }, adapterDir: string, { owned = false } = {}): AdaptedModel {
  const { manifest, tensors } = adapter;
  let { tok } = base;
  let model = base.model;
  const labels = manifest.labels;
  const cfg = manifest.config;
  const maxTokens = num(cfg.maxTokens, 128);
  const done = (predict: (texts: readonly string[]) => number[][], predictSteps?: AdaptedModel["predictSteps"]): AdaptedModel =>
    ({ manifest, labels, body: model, tok, predict, predictSteps: predictSteps ?? function* (texts) { return predict(texts); } });

  if (cfg.objective === "lm") {
    // A generative adapter changes the body only: LoRA merged (own base) or full weights loaded; it has no classifier.
    const noClassifier = (): number[][] => {
      throw new AdapterError(`adapter ${adapterDir} is a generative (objective lm) adapter; it generates text and has no classifier`);
    };
    // Tokens the adapter added (its chat template's role markers): the tokenizer learns them, the body gets their rows.
    const added = addedTokensOf(cfg, adapterDir);
    tok = withAddedTokens(tok, added);
    const rows = tensors[ADDED_ROWS];
    if (added.length > 0 && (rows === undefined || rows.shape[0] !== added.length)) {
      throw new AdapterError(`adapter ${adapterDir}: it adds ${added.length} tokens but ${ADDED_ROWS} is ${rows === undefined ? "missing" : `[${rows.shape}]`}`);
    }
    if (manifest.method === "lora") {
      const l = (cfg.lora ?? {}) as { rank?: number; alpha?: number; dropout?: number; targets?: string[]; seed?: number };
      if (typeof l.rank !== "number") throw new AdapterError(`adapter ${adapterDir}: a LoRA adapter's config has no lora.rank`);
      if (!owned) throw new AdapterError(`adapter ${adapterDir}: a generative LoRA adapter on a shared base is served through the scheduler (bindLoRA), not applied`);
      if (added.length > 0) (model as GPT).addTokens(added.length, toFloat32(rows!));
      const handle = applyLoRA(model, { rank: l.rank, alpha: l.alpha, dropout: l.dropout, targets: l.targets, seed: l.seed });
      handle.loadStateDict(Object.fromEntries(Object.entries(tensors).filter(([k]) => k.endsWith(".lora_A") || k.endsWith(".lora_B"))));
      handle.merge();
    } else if (manifest.method === "full") {
      if (!owned) model = loadBase(base.dir).model;
      if (added.length > 0) (model as GPT).addTokens(added.length);
      model.loadStateDict(Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, { shape: t.shape, data: toFloat32(t) }])));
    } else {
      throw new AdapterError(`adapter ${adapterDir}: a generative adapter's method is lora or full, got ${JSON.stringify(manifest.method)}`);
    }
    model.eval();
    return done(noClassifier);
  }

  switch (manifest.method) {
    case "zero-shot":
    case "few-shot": {
      const template = String(cfg.template ?? ""), cloze = String(cfg.cloze ?? "");
      const verbalizers = (cfg.verbalizers ?? {}) as Record<string, string>;
      const demonstrations = Array.isArray(cfg.demonstrations) ? (cfg.demonstrations as { text: string; label: string }[]) : [];
      const calibrate = cfg.calibrate !== false;
      return done((texts) => {
        const examples = texts.map((text) => ({ text, label: labels[0] }));
        return can(model, "generate")
          ? classifyCausal(model, tok, labels, examples, { template, verbalizers, demonstrations, calibrate }).probs
          : classifyMasked(model, tok, labels, examples, { template: cloze, verbalizers, calibrate }).probs;
      }, function* (texts, pieces) {
        const examples = texts.map((text) => ({ text, label: labels[0] }));
        const result = can(model, "generate")
          ? yield* classifyCausalSteps(model, tok, labels, examples, { template, verbalizers, demonstrations, calibrate }, pieces)
          : yield* classifyMaskedSteps(model, tok, labels, examples, { template: cloze, verbalizers, calibrate }, pieces);
        return result.probs;
      });
    }
    case "probe": {
      const probe = probeFromTensors(tensors, adapterDir);
      const pooling = poolingIn(cfg, model);
      return done((texts) => probeProbs(probe, embedTexts(model, tok, texts, { maxTokens, pooling })),
        function* (texts, pieces) { return probeProbs(probe, yield* embedTextsSteps(model, tok, texts, { maxTokens, pooling }, pieces)); });
    }
    case "prototype": {
      const p = prototypesFromTensors(tensors, num(cfg.scale, 10), adapterDir);
      if (p.numClasses !== labels.length) throw new AdapterError(`adapter ${adapterDir}: ${p.numClasses} prototypes for ${labels.length} labels`);
      const pooling = poolingIn(cfg, model);
      return done((texts) => prototypeProbs(p, embedTexts(model, tok, texts, { maxTokens, pooling })),
        function* (texts, pieces) { return prototypeProbs(p, yield* embedTextsSteps(model, tok, texts, { maxTokens, pooling }, pieces)); });
    }
    case "knn": {
      const n = neighboursFromTensors(tensors, { k: num(cfg.k, 1), scale: num(cfg.scale, 10), numClasses: labels.length }, adapterDir);
      const pooling = poolingIn(cfg, model);
      return done((texts) => neighbourProbs(n, embedTexts(model, tok, texts, { maxTokens, pooling })),
        function* (texts, pieces) { return neighbourProbs(n, yield* embedTextsSteps(model, tok, texts, { maxTokens, pooling }, pieces)); });
    }
    case "setfit": {
      const probe = probeFromTensors(tensors, adapterDir);
      const pooling = poolingIn(cfg, model);
      let ctx: ForwardContext | undefined;
      if (cfg.body === "full") {
        if (!owned) model = loadBase(base.dir).model;
        model.loadStateDict(Object.fromEntries(Object.entries(tensors).filter(([k]) => !k.startsWith("probe.")).map(([k, t]) => [k, { shape: t.shape, data: toFloat32(t) }])));
        model.eval();
      } else {
        const l = (cfg.lora ?? {}) as { rank?: number; alpha?: number; dropout?: number; targets?: string[]; seed?: number };
        if (typeof l.rank !== "number") throw new AdapterError(`adapter ${adapterDir}: a setfit adapter's config has no lora.rank`);
        const own = Object.fromEntries(Object.entries(tensors).filter(([k]) => k.endsWith(".lora_A") || k.endsWith(".lora_B")));
        if (owned) {
          const handle = applyLoRA(model, { rank: l.rank, alpha: l.alpha, dropout: l.dropout, targets: l.targets, seed: l.seed });
          handle.loadStateDict(own);
          handle.merge();
          model.eval();
        } else {
          try {
            ctx = { adapters: [{ start: 0, count: -1, adapter: bindLoRA(model, loraWeights(adapterDir, own, l)) }] };
          } catch (e) {
            throw new AdapterError((e as Error).message);
          }
        }
      }
      return done((texts) => probeProbs(probe, embedThrough(model, tok, texts, { maxTokens, pooling, ctx })),
        function* (texts, pieces) { return probeProbs(probe, yield* embedThroughSteps(model, tok, texts, { maxTokens, pooling, ctx }, pieces)); });
    }
    case "head":
    case "lora":
    case "full": {
      let shared: SequenceClassifier["encoder"] | null = null;
      let adapterOnShared;
      if (manifest.method === "lora") {
        const l = (cfg.lora ?? {}) as { rank?: number; alpha?: number; dropout?: number; targets?: string[]; seed?: number };
        if (typeof l.rank !== "number") throw new AdapterError(`adapter ${adapterDir}: a LoRA adapter's config has no lora.rank`);
        const own = Object.fromEntries(Object.entries(tensors).filter(([k]) => k.endsWith(".lora_A") || k.endsWith(".lora_B")));
        if (owned) {
          const handle = applyLoRA(model, { rank: l.rank, alpha: l.alpha, dropout: l.dropout, targets: l.targets, seed: l.seed });
          handle.loadStateDict(own);
          handle.merge();
        } else {
          try {
            adapterOnShared = bindLoRA(model, loraWeights(adapterDir, own, l));
          } catch (e) {
            throw new AdapterError((e as Error).message);
          }
        }
      } else if (manifest.method === "full") {
        // A full fine-tune carries every body weight: on a shared base it gets a copy of its own.
        if (!owned) model = shared = loadBase(base.dir).model;
        const body = Object.fromEntries(Object.entries(tensors).filter(([k]) => !k.startsWith("score.")).map(([k, t]) => [k, { shape: t.shape, data: toFloat32(t) }]));
        model.loadStateDict(body);
      }
      if (owned || shared !== null) model.eval();
      const clf = new SequenceClassifier(model, tok, labels.length, { maxTokens, adapter: adapterOnShared });
      headOf(clf, tensors, adapterDir);
      return done((texts) => clf.predict(texts), (texts, pieces) => clf.predictSteps(texts, pieces));
    }
    default:
      throw new AdapterError(`adapter ${adapterDir}: method ${JSON.stringify(manifest.method)} is not one this version can apply (zero-shot, few-shot, probe, prototype, knn, setfit, head, lora, full)`);
  }
}
