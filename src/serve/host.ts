/**
 * What the server has loaded: each registered base model once (weights, tokenizer, and for
 * a causal LM one generation scheduler shared by every tenant and adapter), and adapters'
 * tensors, cached by adapter id. `resolve` turns a request's `model` ("base" or
 * "base:adapter") into a base and the caller's own adapter, never another tenant's.
 */
import { type AdapterManifest, loadAdapter, probeFromTensors } from "../adapt/artifact.js";
import { type AdaptedModel, addedTokensOf, applyAdapter } from "../adapt/apply.js";
import { type TextTokenizer, withAddedTokens } from "../data/tokenizer.js";
import { AdapterMismatchError, bindLoRA } from "../adapt/lora_factors.js";
import type { LinearProbe } from "../adapt/probe.js";
import { type LoadedBase, loadBase } from "../adapt/base.js";
import { type WeightFormat, useInferenceWeights } from "../models/inference_weights.js";
import type { GPT } from "../models/gpt/model.js";
import { can, supports } from "../models/registry.js";
import { loadClipRun } from "../data/clip_run.js";

export type ClipRun = ReturnType<typeof loadClipRun>;
import type { AdapterEntry, ModelEntry, Registry } from "../registry/index.js";
import type { RawTensor } from "../io/safetensors.js";
import { apiError } from "./errors.js";
import { loraWeights, type LoRAWeights } from "./packed.js";
import { Scheduler, type SchedulerOptions } from "./scheduler.js";

export interface LoadedModel extends LoadedBase {
  entry: ModelEntry;
  scheduler: Scheduler | null;
}

export interface Resolved {
  id: string;
  base: LoadedModel;
  adapter: AdapterEntry | null;
}

export interface LoadedAdapterData {
  entry: AdapterEntry;
  manifest: AdapterManifest;
  config: Record<string, unknown>;
  tensors: Record<string, RawTensor>;
  lora: LoRAWeights | null;
  probe: LinearProbe | null;
  /** The adapter applied to the shared base (made on first use): what /v1/classifications calls. */
  applied: AdaptedModel | null;
  /**
   * A generative full fine-tune's own scheduler, over its own copy of the base with its weights
   * (made on first use): its sequences batch with each other, not with the base's.
   */
  scheduler: Scheduler | null;
  /** The base's tokenizer with the tokens a generative adapter added (its role markers), or the base's own. */
  tok: TextTokenizer;
  /** Bytes of the base's copy `applied` holds (a full fine-tune's own weights), counted in the cache's bound. */
  copyBytes: number;
}

/** What generates for a request: the base's scheduler with a LoRA adapter's factors (or none), or a full fine-tune's own scheduler. */
export interface Generator {
  scheduler: Scheduler;
  lora: LoRAWeights | null;
  /** How prompts are encoded and replies decoded: with the adapter's added tokens, if it has any. */
  tok: TextTokenizer;
}

/** What an adapter holds: its tensors, and the copy of its base a full fine-tune is applied to. */
const tensorBytes = (a: LoadedAdapterData): number => Object.values(a.tensors).reduce((n, t) => n + t.data.byteLength, 0) + a.copyBytes;

/** The id a client calls an adapter by: OpenAI's ft:<base>:<tenant>:<suffix>:<id> for a generative job's (named ft-<id>), else base:name. */
export async function modelIdOf(registry: Registry, a: AdapterEntry): Promise<string> {
  if (a.jobId !== null && a.name.startsWith("ft-")) return `ft:${a.base}:${a.tenant}:${(await registry.jobs.job(a.jobId))?.suffix ?? ""}:${a.name.slice(3)}`;
  return `${a.base}:${a.name}`;
}

/** The tenant's adapter an ft: model id names (another tenant's is never found). */
export async function fineTunedAdapter(registry: Registry, tenant: string, model: string): Promise<AdapterEntry | undefined> {
  const parts = model.split(":");
  if (parts.length !== 5 || parts[0] !== "ft" || parts[2] !== tenant) return undefined;
  const adapter = await registry.catalog.adapter(tenant, parts[1], `ft-${parts[4]}`);
  return adapter !== undefined && (await modelIdOf(registry, adapter)) === model ? adapter : undefined;
}

export class ModelHost {
  private readonly bases = new Map<string, LoadedModel>();
  private readonly adapters = new Map<string, LoadedAdapterData>();
  private readonly clips = new Map<string, ClipRun>();

  private adapterBytes = 0;
  /** Adapter cache lookups that found the adapter loaded, and those that loaded it (what adapter-aware routing saves). */
  readonly adapterCache = { hits: 0, misses: 0 };

  /**
   * At most `maxAdapters` adapters and `maxAdapterBytes` of their tensors stay loaded (a full
   * fine-tune's adapter is a whole copy of its base, so a count alone does not bound memory);
   * the least recently used leave first, never the one just loaded.
   */
  constructor(readonly registry: Registry, readonly schedulerOptions: SchedulerOptions = {}, readonly maxAdapters = 256,
    readonly maxAdapterBytes = 2 * 1024 ** 3, readonly weights: WeightFormat = "fp32") {}

  /** A base already loaded (no registry read), or undefined. */
  loadedBase(name: string): LoadedModel | undefined {
    return this.bases.get(name);
  }

  async base(name: string): Promise<LoadedModel> {
    let b = this.bases.get(name);
    if (b === undefined) {
      const entry = await this.registry.catalog.model(name);
      b = this.bases.get(name);  // loaded by another request meanwhile
      if (b !== undefined) return b;
      if (entry === undefined) throw apiError("model_not_found", `The model '${name}' does not exist.`, "model");
      if (supports(entry.modelType, "score-images")) throw apiError("unsupported_model", `The model '${name}' is an image-text (CLIP) model; use it with /v1/zero-shot and an image.`, "model");
      const loaded = loadBase(entry.dir, this.weights);
      if (loaded.identity.sha256 !== entry.sha256) {
        throw apiError("internal_error", `The base '${name}' changed on disk: registered sha256 ${entry.sha256}, found ${loaded.identity.sha256}; re-register it.`);
      }
      b = { ...loaded, entry, scheduler: can(loaded.model, "generate") ? new Scheduler(loaded.model, this.schedulerOptions) : null };
      this.bases.set(name, b);
    }
    return b;
  }

  /** "base", "base:adapter" or "ft:<base>:<tenant>:<suffix>:<id>" for this tenant; unknown and foreign names are both "not found". */
  async resolve(tenant: string, model: string): Promise<Resolved> {
    const i = model.indexOf(":");
    const baseName = i < 0 ? model : model.slice(0, i);
    const missing = () => apiError("model_not_found", `The model '${model}' does not exist or you do not have access to it.`, "model");
    if (model.startsWith("ft:")) {
      const adapter = await fineTunedAdapter(this.registry, tenant, model);
      if (adapter === undefined) throw missing();
      return { id: model, base: await this.base(adapter.base), adapter };
    }
    if (!this.bases.has(baseName) && (await this.registry.catalog.model(baseName)) === undefined) throw missing();
    if (i < 0) return { id: model, base: await this.base(baseName), adapter: null };
    const adapter = await this.registry.catalog.adapter(tenant, baseName, model.slice(i + 1));
    if (adapter === undefined) throw missing();
    return { id: model, base: await this.base(baseName), adapter };
  }

  async adapterData(entry: AdapterEntry): Promise<LoadedAdapterData> {
    let a = this.adapters.get(entry.id);
    if (a !== undefined) this.adapterCache.hits++;
    else this.adapterCache.misses++;
    if (a === undefined) {
      const base = await this.base(entry.base);
      a = this.adapters.get(entry.id);  // loaded by another request meanwhile
      if (a !== undefined) return a;
      const { manifest, tensors } = loadAdapter(entry.dir, base.dir);
      const hasLoRA = Object.keys(tensors).some((k) => k.endsWith(".lora_A"));
      const loraConfig = (manifest.config.lora ?? manifest.config) as Record<string, unknown>;
      const lora = hasLoRA ? loraWeights(entry.id, tensors, loraConfig) : null;
      // Factors that do not fit the base are refused here: inside a shared step they would fail every tenant's sequence.
      if (lora !== null) {
        const added = manifest.config.objective === "lm" ? addedTokensOf(manifest.config, entry.dir).length : 0;
        if (added !== (lora.added?.count ?? 0)) {
          throw apiError("unsupported_model", `The adapter '${entry.base}:${entry.name}' adds ${added} tokens but carries ${lora.added?.count ?? 0} rows for them.`, "model");
        }
        try {
          bindLoRA(base.model, lora);
        } catch (e) {
          if (e instanceof AdapterMismatchError) throw apiError("unsupported_model", `The adapter '${entry.base}:${entry.name}' does not fit its base: ${e.message}.`, "model");
          throw e;
        }
      }
      a = {
        entry, manifest, config: manifest.config, tensors,
        lora,
        probe: "probe.weight" in tensors ? probeFromTensors(tensors, entry.dir) : null,
        applied: null,
        scheduler: null,
        tok: manifest.config.objective === "lm" ? withAddedTokens(base.tok, addedTokensOf(manifest.config, entry.dir)) : base.tok,
        copyBytes: 0,
      };
      this.adapters.set(entry.id, a);
      this.adapterBytes += tensorBytes(a);
      // Least recently used adapters leave the cache first; sequences already running keep
      // their own reference to the factors, so eviction never disturbs them.
      while (this.adapters.size > 1 && (this.adapters.size > this.maxAdapters || this.adapterBytes > this.maxAdapterBytes)) {
        const [id, old] = this.adapters.entries().next().value!;
        this.adapters.delete(id);
        this.adapterBytes -= tensorBytes(old);
      }
    } else {
      this.adapters.delete(entry.id);
      this.adapters.set(entry.id, a);  // most recently used last
    }
    return a;
  }

  /** The adapter applied to its (shared, unchanged) base, ready to predict; cached with the adapter. */
  async applied(entry: AdapterEntry): Promise<AdaptedModel> {
    const a = await this.adapterData(entry);
    if (a.applied === null) {
      const base = await this.base(entry.base);
      a.applied = applyAdapter(base, a, entry.dir);
      if (a.applied.body !== base.model && this.adapters.get(entry.id) === a) {
        a.copyBytes = a.applied.body.parameters().reduce((n, p) => n + p.size * 4, 0);
        this.adapterBytes += a.copyBytes;
      }
    }
    return a.applied;
  }

  /**
   * The scheduler and factors that generate for a base or one of its adapters: a LoRA adapter
   * runs on the base's scheduler beside every other adapter; a generative full fine-tune runs on
   * its own scheduler over the copy of the base applyAdapter makes (cached with the adapter, so
   * the cache's bounds hold it); other adapters are refused.
   */
  async generator(resolved: Resolved, modelId: string): Promise<Generator> {
    const base = resolved.base;
    if (base.scheduler === null) throw apiError("unsupported_model", `The model '${base.entry.name}' is a ${base.kind} encoder; text generation needs a causal LM (gpt2) base.`, "model");
    if (resolved.adapter === null) return { scheduler: base.scheduler, lora: null, tok: base.tok };
    const a = await this.adapterData(resolved.adapter);
    if (a.lora !== null) return { scheduler: base.scheduler, lora: a.lora, tok: a.tok };
    if (a.config.objective === "lm" && a.manifest.method === "full") {
      if (a.scheduler === null) {
        const applied = await this.applied(resolved.adapter);
        if (this.weights !== "fp32") useInferenceWeights(applied.body, this.weights);
        a.scheduler = new Scheduler(applied.body as GPT, this.schedulerOptions);
      }
      return { scheduler: a.scheduler, lora: null, tok: a.tok };
    }
    throw apiError("unsupported_model", `The adapter '${modelId}' (method ${resolved.adapter.method}) has no weights for generation; use /v1/classifications with it.`, "model");
  }

  /** The tokenizer a request to this base or adapter is encoded with (an adapter's added tokens included). */
  async tokenizer(resolved: Resolved): Promise<TextTokenizer> {
    return resolved.adapter === null ? resolved.base.tok : (await this.adapterData(resolved.adapter)).tok;
  }

  /** Every generation scheduler: the loaded bases' and the cached full fine-tunes'. */
  schedulers(): Scheduler[] {
    const out: Scheduler[] = [];
    for (const b of this.bases.values()) if (b.scheduler !== null) out.push(b.scheduler);
    for (const a of this.adapters.values()) if (a.scheduler !== null) out.push(a.scheduler);
    return out;
  }

  /** Drops an adapter from the cache (a deleted model); sequences already running keep their own reference. */
  forget(adapterId: string): void {
    const a = this.adapters.get(adapterId);
    if (a === undefined) return;
    this.adapters.delete(adapterId);
    this.adapterBytes -= tensorBytes(a);
  }

  /** Ids of the adapters held in memory, least recently used first, and their tensors' bytes. */
  cachedAdapters(): { ids: string[]; bytes: number } {
    return { ids: [...this.adapters.keys()], bytes: this.adapterBytes };
  }

  /** An image-text (CLIP) base, for zero-shot image classification. */
  async clip(name: string): Promise<ClipRun> {
    let run = this.clips.get(name);
    if (run === undefined) {
      const entry = await this.registry.catalog.model(name);
      run = this.clips.get(name);
      if (run !== undefined) return run;
      if (entry === undefined) throw apiError("model_not_found", `The model '${name}' does not exist.`, "model");
      if (!supports(entry.modelType, "score-images")) throw apiError("unsupported_model", `The model '${name}' is a ${entry.modelType} model; zero-shot image classification needs an image-text (CLIP) base.`, "model");
      run = loadClipRun(entry.dir);
      this.clips.set(name, run);
    }
    return run;
  }

  loaded(): string[] {
    return [...this.bases.keys()];
  }

  /** How many adapters are loaded now. */
  loadedAdapters(): number {
    return this.adapters.size;
  }

  close(): void {
    for (const s of this.schedulers()) s.close();
  }
}
