/**
 * `plinth pretrain`: tokenizer (trained on the data unless given), corpus shards, model,
 * the trainer; resumes from the newest checkpoint in --out when there is one.
 * `plinth tokenizer train`: just the tokenizer.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { prepareCorpus, type PrepareProgress, type PreparedCorpus } from "../data/prepare.js";
import { sampleSources } from "../data/sample.js";
import { BUILTIN_SOURCES, checkSource } from "../data/sources.js";
import { BPETextTokenizer, type TextTokenizer } from "../data/tokenizer.js";
import type { TokenSource } from "../data/tokens.js";
import { GPT, GPT_PRESETS, gptConfig } from "../models/gpt/index.js";
import { BPETokenizer, trainBPE } from "../tokenizer/index.js";
import { clm, languageModeling, mlm } from "../train/language.js";
import { BertForMaskedLM, BERT_PRESETS, bertConfig } from "../models/bert/index.js";
import { POOLINGS, type Pooling, architectureOf, can, choosePooling, contextLength, isPooling, loadModel, poolingOf, saveModel, vocabSize } from "../models/registry.js";
import { type EmbedViews, sentenceEmbedding } from "../train/embed.js";
import type { Objective } from "../train/trainer.js";
import { formatSeconds, Progress } from "../train/progress.js";
import { Trainer, type TrainResult } from "../train/trainer.js";
import { dataParallel, World, type DataParallel, type DataParallelStats } from "../train/parallel/index.js";
import { launchedRank, loadMpi } from "../native/mpi.js";
import { runRanks } from "./procs.js";
import { device } from "../tensor/device.js";
import { PRECISIONS, type Precision, defaultPrecision, lowpDescription } from "../tensor/precision.js";
import { UsageError, checkFile, checkModelDir, checkWritableDir, oneOf, optionalInt, parseDuration, parseIntArg, parsePositiveArg } from "./args.js";
import { runPretrainContrastive } from "./clip.js";

export const tokenizerHelp = `plinth tokenizer train — train a byte-level BPE tokenizer (Hugging Face tokenizer.json)

Usage: plinth tokenizer train --data <source>... [--vocab 4096] [--sample-mb 16] --out <tokenizer.json>

  --data       built-in source (moby-dick, sotu, spam-ham, wordnet, typescript, english, default),
               a file, a folder, a glob, or file.jsonl[:field]; repeatable
  --vocab      vocabulary size including 5 special tokens and 256 bytes (default 4096)
  --sample-mb  train merges on at most this much text (millions of characters), a random sample
               of ~16K-character segments drawn across the whole corpus (default 16)

Examples:
  plinth tokenizer train --data default --vocab 8192 --out runs/tok/tokenizer.json
  plinth tokenizer train --data "src/**/*.ts" --out code-tokenizer.json`;

export const pretrainHelp = `plinth pretrain — self-supervised pretraining from raw text

Usage: plinth pretrain [--objective clm|mlm|embed] [--size tiny|small|S|M] [--data <source>...]
                       [--time 10m | --tokens N | --steps N] [--out runs/<name>] [options]

  --objective   clm: causal LM (GPT, default); mlm: masked LM (BERT);
                embed: sentence embeddings (SimCSE-style InfoNCE: two dropout-noise views of one
                span are a pair, the batch's other spans its negatives), from scratch (GPT) or as
                a continued stage on a base with --init; records the objective and the pooling
  --init        (embed) a base folder to continue from (GPT or BERT; its tokenizer is used)
  --pooling     (embed) mean | last | cls (cls: BERT only); default the base's, else mean
  --views       (embed) dropout (default) or neighbours (a span and the span after it)
  --temperature (embed) InfoNCE temperature (default 0.05)
                contrastive: CLIP image–text (see plinth pretrain --objective contrastive --help)
  --size        model preset (default small)
  --data        sources as for 'plinth tokenizer train' (default: default); one long file is fine:
                with too few documents the validation text is held out by paragraph blocks
  --time/--tokens/--steps   budget (default --time 10m)
  --out         run folder: tokenizer.json, data/ shards + manifest.json, checkpoints/,
                metrics.jsonl, loss.svg, and the final config.json + model.safetensors
  --tokenizer   an existing tokenizer.json (default: train one into the run folder)
  --vocab       vocabulary size when training the tokenizer (default 4096)
  --sample-mb   tokenizer training sample, as for 'plinth tokenizer train' (default 16)
  --prep-memory-mb  bound on text in flight while preparing the corpus, MB (default 256)
  --prep-threads    tokenizer threads for the corpus (default: one per core)
  --batch, --ctx, --lr, --warmup, --grad-accum, --eval-every, --checkpoint-every, --seed
  --procs N     data-parallel over N processes on this machine (runs mpirun; needs Open MPI);
                under mpirun/srun the ranks are found on their own. --batch is the global batch
                (embed, contrastive: each rank embeds its rows and the embeddings are all-gathered,
                so the InfoNCE loss is the one-process loss over the whole batch)
  --bucket-mb   gradient all-reduce bucket size, MB (default 25)
  --shard-optimizer  ZeRO-1: split AdamW's moments across the ranks (memory per rank ~1/N)
  --precision   fp32 (default) or bf16: matrix products on bf16 operands with float32 accumulation
                (vdpbf16ps where the CPU has it, see plinth info); weights, optimizer state,
                LayerNorm, softmax, loss and checkpoints stay float32; recorded in metrics.jsonl.
                Other trainers (plinth adapt, CLIP, fine-tuning jobs) take PLINTH_PRECISION=bf16
  --device      cpu (default), cuda[:N] (the experimental CUDA backend, when built), or opaque
                (a test device: CPU kernels on memory JavaScript cannot read); clm only for now
Runs resume from the newest checkpoint in --out; SIGINT/SIGTERM save one and exit. The corpus
is prepared as a stream (any size; .gz and .zst inputs too) into --out/data; an interrupted
preparation resumes there, and adding a --data source tokenizes only the new documents.

Examples:
  plinth pretrain --data moby-dick --size tiny --time 2m --out runs/moby
  plinth pretrain --data typescript --size small --tokens 5000000 --out runs/code
  plinth pretrain --objective mlm --data english --time 10m --out runs/bert
  plinth pretrain --objective embed --init runs/default --time 5m --out runs/default-embed`;

export async function runTokenizer(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === "--help" || sub === "-h" || sub === undefined) {
    console.log(tokenizerHelp);
    return;
  }
  if (sub !== "train") throw new UsageError(`unknown tokenizer command "${sub}" (expected: train)`);
  const { values } = parseArgs({ args: rest, options: { data: { type: "string", multiple: true }, vocab: { type: "string" }, "sample-mb": { type: "string" }, out: { type: "string" }, help: { type: "boolean", short: "h" } } });
  if (values.help) {
    console.log(tokenizerHelp);
    return;
  }
  if (values.out === undefined) throw new UsageError("--out is required");
  const data = values.data ?? ["default"];
  const vocab = parseIntArg("vocab", values.vocab, 4096, 261), sampleMb = parsePositiveArg("sample-mb", values["sample-mb"], 16);
  for (const spec of data) {
    try {
      checkSource(spec);
    } catch (e) {
      throw new UsageError(`--data ${(e as Error).message}`);
    }
  }
  checkWritableDir("out", dirname(resolve(values.out)));
  const t0 = performance.now();
  const tok = await trainTokenizer(data, vocab, sampleMb);
  const path = tok.save(values.out);
  console.log(`trained a ${tok.vocabSize}-token BPE vocabulary in ${formatSeconds((performance.now() - t0) / 1000)}; saved ${path}`);
}

/**
 * Trains a BPE vocabulary on a sample of at most `sampleMb` million characters drawn across the
 * whole stream of `specs` (src/data/sample.ts); a corpus that small or smaller is used whole.
 */
export async function trainTokenizer(specs: string[], vocab: number, sampleMb: number): Promise<BPETokenizer> {
  const sample = await sampleSources(specs, { maxChars: sampleMb * 1e6 });
  if (sample.texts.length === 0) throw new Error(`tokenizer: no text found in ${specs.join(", ")} to train a tokenizer on`);
  return trainBPE(sample.texts, { vocabSize: vocab });
}

/** Unigram cross-entropy (nats/token) of val under train's add-one-smoothed token frequencies. */
export function unigramBaseline(train: TokenSource, val: TokenSource, vocab: number): number {
  const counts = new Float64Array(vocab).fill(1);
  const chunk = new Int32Array(1 << 20);
  const scan = (src: TokenSource, fn: (t: number) => void) => {
    for (let at = 0; at < src.length; at += chunk.length) {
      const n = Math.min(chunk.length, src.length - at);
      const view = chunk.subarray(0, n);
      src.read(at, view);
      for (const t of view) fn(t);
    }
  };
  scan(train, (t) => counts[t]++);
  const total = train.length + vocab;
  let nll = 0;
  scan(val, (t) => (nll -= Math.log(counts[t] / total)));
  return nll / val.length;
}

export interface PretrainRun {
  objective?: "clm" | "mlm" | "embed";
  outDir: string;
  tokenizer: TextTokenizer;
  corpus: PreparedCorpus;
  model: GPT | BertForMaskedLM;
  result: TrainResult;
  unigram: number;
  /** Set in data-parallel runs: this rank's communication statistics. */
  parallel?: DataParallelStats;
}

/** Options of `pretrain`; what is left out takes the `plinth pretrain` defaults (PRETRAIN_DEFAULTS). */
export interface PretrainOptions {
  objective?: "clm" | "mlm" | "embed";
  /** embed: the base folder to continue from (default: a fresh GPT of `size`). */
  init?: string;
  /** embed: the pooling trained and recorded (default the base's, else mean). */
  pooling?: Pooling;
  views?: EmbedViews;
  temperature?: number;
  /** A preset of the objective's model: GPT_PRESETS or BERT_PRESETS. */
  size?: string;
  /** Source specs (see src/data/sources.ts). */
  data?: string[];
  outDir: string;
  /** Budget: whichever comes first; none given means 600 seconds. */
  seconds?: number;
  tokens?: number;
  steps?: number;
  /** An existing tokenizer.json; else one is trained on `data` into outDir. */
  tokenizerPath?: string;
  vocab?: number;
  batch?: number;
  /** Training window; default the preset's context length. */
  ctx?: number;
  lr?: number;
  warmup?: number;
  gradAccum?: number;
  evalEvery?: number;
  checkpointEvery?: number;
  seed?: number;
  /** Tokenizer training sample, millions of characters (default 16). */
  sampleMb?: number;
  /** Corpus preparation: bound on text in flight, MB (default 256), and tokenizer threads (default one per core). */
  prepMemoryMb?: number;
  prepThreads?: number;
  quiet?: boolean;
  /** Data-parallel options, used when this process is one rank of several (mpirun, srun, --procs). */
  bucketMb?: number;
  shardOptimizer?: boolean;
  /** Matrix products in float32 (default) or bf16 with float32 accumulation (tensor/precision.ts). */
  precision?: Precision;
  /** Where the model trains: "cpu" (default), "cuda[:N]" or "opaque"; clm only for now. */
  device?: string;
}

/** The options `pretrain` fills in when they are left out (the `plinth pretrain` defaults). */
export const PRETRAIN_DEFAULTS = {
  objective: "clm", size: "small", data: ["default"], vocab: 4096, batch: 16, lr: 1e-3, warmup: 100, gradAccum: 1, evalEvery: 200, checkpointEvery: 200, seed: 1234,
} satisfies Partial<PretrainOptions>;

export type ResolvedPretrainOptions = PretrainOptions & Required<Pick<PretrainOptions, keyof typeof PRETRAIN_DEFAULTS>>;

const presetsOf = (objective: "clm" | "mlm" | "embed"): Record<string, { n_positions?: number; max_position_embeddings?: number }> => objective === "mlm" ? BERT_PRESETS : GPT_PRESETS;

/** embed: the longest span (--ctx, default 64: task texts are short). */
const embedSpan = (o: PretrainOptions): number => o.ctx ?? 64;

/** The training window: --ctx, else the preset's context length. */
function contextOf(o: ResolvedPretrainOptions): number {
  if (o.objective === "embed") return 2 * embedSpan(o) + 1;  // validation reads neighbouring spans
  const preset = presetsOf(o.objective)[o.size];
  return o.ctx ?? preset.n_positions ?? preset.max_position_embeddings!;
}

/**
 * Fills in defaults and checks every option before any work (tokenizer training, sharding):
 * the preset, the objective, budgets, sizes, the learning rate, that every data source exists,
 * that a given tokenizer exists (with [MASK] for mlm), and that the run folder can be written.
 * Errors are UsageErrors naming the flag and what it accepts.
 */
export function resolvePretrainOptions(options: PretrainOptions): ResolvedPretrainOptions {
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as PretrainOptions;
  const o: ResolvedPretrainOptions = { ...PRETRAIN_DEFAULTS, data: [...PRETRAIN_DEFAULTS.data], ...given } as ResolvedPretrainOptions;
  if (o.objective !== "clm" && o.objective !== "mlm" && o.objective !== "embed") throw new UsageError(`--objective must be clm, mlm, embed or contrastive, got "${o.objective}"`);
  if (o.objective === "embed") {
    // A continued stage moves a trained body: a smaller step than pretraining's, and more in-batch negatives.
    if (given.lr === undefined) o.lr = o.init !== undefined ? 1e-4 : 5e-4;
    if (given.batch === undefined) o.batch = 32;
    if (o.init !== undefined) {
      checkModelDir("init", o.init);
      if (o.tokenizerPath === undefined && existsSync(join(o.init, "tokenizer.json"))) o.tokenizerPath = join(o.init, "tokenizer.json");
    }
    if (o.pooling !== undefined && !isPooling(o.pooling)) throw new UsageError(`--pooling must be ${POOLINGS.join(", ")}, got "${o.pooling}"`);
    if (o.views !== undefined && o.views !== "dropout" && o.views !== "neighbours") throw new UsageError(`--views must be dropout or neighbours, got "${o.views}"`);
    if (o.temperature !== undefined && !(Number.isFinite(o.temperature) && o.temperature > 0)) throw new UsageError(`--temperature must be a number > 0, got ${o.temperature}`);
  } else if (o.init !== undefined || o.pooling !== undefined || o.views !== undefined || o.temperature !== undefined) {
    throw new UsageError("--init, --pooling, --views and --temperature belong to --objective embed");
  }
  if (o.precision !== undefined && !(PRECISIONS as readonly string[]).includes(o.precision)) throw new UsageError(`--precision must be ${PRECISIONS.join(" or ")}, got "${o.precision}"`);
  const presets = presetsOf(o.objective);
  if (!Object.hasOwn(presets, o.size)) throw new UsageError(`unknown --size "${o.size}" for ${o.objective} (expected ${Object.keys(presets).join(", ")})`);
  const int = (name: string, v: number | undefined, min: number) => {
    if (v !== undefined && !(Number.isInteger(v) && v >= min)) throw new UsageError(`--${name} must be an integer >= ${min}, got ${v}`);
  };
  int("tokens", o.tokens, 1);
  int("steps", o.steps, 1);
  if (o.seconds !== undefined && !(o.seconds > 0)) throw new UsageError(`--time must be a duration > 0, e.g. 90s, 5m or 1h, got ${o.seconds} seconds`);
  if (o.seconds === undefined && o.tokens === undefined && o.steps === undefined) o.seconds = 600;
  int("vocab", o.vocab, 261);
  int("batch", o.batch, 1);
  int("ctx", o.ctx, 1);
  int("warmup", o.warmup, 0);
  int("grad-accum", o.gradAccum, 1);
  int("eval-every", o.evalEvery, 1);
  int("checkpoint-every", o.checkpointEvery, 1);
  int("seed", o.seed, 0);
  int("prep-threads", o.prepThreads, 0);
  if (o.sampleMb !== undefined && !(Number.isFinite(o.sampleMb) && o.sampleMb > 0)) throw new UsageError(`--sample-mb must be a number > 0, got ${o.sampleMb}`);
  if (o.prepMemoryMb !== undefined && !(Number.isFinite(o.prepMemoryMb) && o.prepMemoryMb >= 1)) throw new UsageError(`--prep-memory-mb must be a number >= 1, got ${o.prepMemoryMb}`);
  if (!(Number.isFinite(o.lr) && o.lr > 0)) throw new UsageError(`--lr must be a number > 0, e.g. 1e-3, got ${o.lr}`);
  if (o.data.length === 0) throw new UsageError(`--data: no data sources given (built-in sources: ${BUILTIN_SOURCES.join(", ")})`);
  for (const spec of o.data) {
    try {
      checkSource(spec);
    } catch (e) {
      throw new UsageError(`--data ${(e as Error).message}`);
    }
  }
  if (o.tokenizerPath !== undefined) {
    checkFile("tokenizer", o.tokenizerPath);
    if (o.objective === "mlm" && !readFileSync(o.tokenizerPath, "utf8").includes('"[MASK]"')) {
      throw new UsageError(`--tokenizer ${o.tokenizerPath} has no [MASK] token, which --objective mlm needs; leave --tokenizer out to train one`);
    }
  }
  if (o.device !== undefined) {
    if (o.objective !== "clm") throw new UsageError(`--device ${o.device}: only --objective clm trains off the CPU for now`);
    try {
      device(o.device);
    } catch (e) {
      const m = (e as Error).message;
      throw new UsageError(m.startsWith("device: ") ? `--device: ${m.slice(8)}` : `--device ${m.replace(/^device /, "")}`);
    }
  }
  checkWritableDir("out", o.outDir);
  return o;
}

export async function pretrain(options: PretrainOptions): Promise<PretrainRun> {
  const o = resolvePretrainOptions(options);
  // One rank of several: rank 0 prepares the tokenizer and corpus while the others wait, then
  // they reuse them; rank 0 alone prints and writes.
  const launched = launchedRank();
  let dp: DataParallel | null = null;
  if (launched !== null && launched.size > 1) {
    loadMpi();
    const world = World.join();
    dp = dataParallel(world, { bucketMb: o.bucketMb, shardOptimizer: o.shardOptimizer });
    if (!world.leader) {
      o.quiet = true;
      await world.done(world.mpi.barrier(), "waiting for rank 0 to prepare the tokenizer and corpus", 24 * 3600);
    }
  }
  return pretrainOn(o, dp);
}

async function pretrainOn(o: ResolvedPretrainOptions, dp: DataParallel | null): Promise<PretrainRun> {
  const outDir = resolve(o.outDir);
  mkdirSync(outDir, { recursive: true });
  const tokPath = o.tokenizerPath ?? join(outDir, "tokenizer.json");
  let bpe: BPETokenizer;
  if (existsSync(tokPath)) {
    bpe = BPETokenizer.load(tokPath);
    if (!o.quiet) console.log(`tokenizer: ${tokPath} (${bpe.vocabSize} tokens)`);
  } else {
    const t0 = performance.now();
    bpe = await trainTokenizer(o.data, o.vocab, o.sampleMb ?? 16);
    bpe.save(tokPath);
    if (!o.quiet) console.log(`tokenizer: trained ${bpe.vocabSize} tokens in ${formatSeconds((performance.now() - t0) / 1000)} -> ${tokPath}`);
  }
  if (o.tokenizerPath !== undefined && resolve(o.tokenizerPath) !== join(outDir, "tokenizer.json")) bpe.save(join(outDir, "tokenizer.json"));
  const tokenizer = new BPETextTokenizer(bpe);
  const t1 = performance.now();
  const corpus = await prepareCorpus({
    specs: o.data, tokenizer, outDir: join(outDir, "data"), minTokens: contextOf(o) + 1, memoryMb: o.prepMemoryMb, threads: o.prepThreads,
    onProgress: o.quiet ? undefined : corpusProgress(),
  });
  if (dp !== null && dp.world.leader) await dp.world.done(dp.world.mpi.barrier(), "the corpus-ready barrier", 24 * 3600);
  const m = corpus.manifest;
  if (!o.quiet) {
    for (const s of m.sources) {
      if (s.unreadableFiles !== undefined) console.log(`corpus: skipped ${s.unreadableFiles.length} unreadable file(s) of ${s.spec}: ${s.unreadableFiles.slice(0, 5).map((f) => `${f.path} (${f.reason})`).join("; ")}${s.unreadableFiles.length > 5 ? "; ..." : ""}`);
      if (s.invalidUtf8Files.length > 0) console.log(`corpus: ${s.invalidUtf8Files.length} file(s) of ${s.spec} are not valid UTF-8 (decoded with U+FFFD): ${s.invalidUtf8Files.slice(0, 5).join(", ")}${s.invalidUtf8Files.length > 5 ? ", ..." : ""}`);
    }
    const st = corpus.stats;
    if (st.how === "resumed" || st.how === "extended") console.log(`corpus: ${st.how === "resumed" ? "resumed an interrupted preparation" : "extended the prepared corpus with the new sources"}: tokenized ${st.documents.toLocaleString("en-US")} more documents`);
    console.log(`corpus: ${m.documents.toLocaleString("en-US")} documents (${m.duplicatesDropped} duplicates dropped) -> ${m.train.tokens.toLocaleString("en-US")} train / ${m.val.tokens.toLocaleString("en-US")} validation tokens${m.split?.unit === "block" ? ` (too few documents to split whole: split by blocks of ~${m.split.blockChars!.toLocaleString("en-US")} characters)` : ""}, ${corpus.bytesPerToken.toFixed(2)} bytes/token${corpus.reused ? " (reused)" : ` in ${formatSeconds((performance.now() - t1) / 1000)}`}`);
  }
  let model: GPT | BertForMaskedLM;
  let ctx: number;
  let describe: string;
  const specials = bpe.addedTokens.map((t) => t.id);
  if (o.objective === "embed" && o.init !== undefined) {
    const loaded = loadModel(o.init, { op: "pretrain --init" });
    if (!can(loaded, "embed")) throw new UsageError(`--init ${o.init}: a ${architectureOf(loaded).modelType} model gives no sentence embeddings; give a GPT or BERT base`);
    if (vocabSize(loaded) !== tokenizer.vocabSize) throw new UsageError(`--init ${o.init}: the model reads ${vocabSize(loaded)} token ids but the tokenizer has ${tokenizer.vocabSize}; use the base's own tokenizer.json`);
    model = loaded;
    ctx = Math.min(embedSpan(o), contextLength(model));
    describe = `${architectureOf(model).title} from ${o.init}, ${(model.numParameters() / 1e6).toFixed(2)}M parameters (${architectureOf(model).shape(model)})`;
  } else if (o.objective === "clm" || o.objective === "embed") {
    const preset = GPT_PRESETS[o.size];
    ctx = o.objective === "embed" ? Math.min(embedSpan(o), preset.n_positions!) : o.ctx ?? preset.n_positions!;
    const config = gptConfig({ vocab_size: tokenizer.vocabSize, bos_token_id: tokenizer.eot, eos_token_id: tokenizer.eot, ...preset, n_positions: Math.max(ctx, preset.n_positions ?? ctx) });
    model = new GPT(config, { seed: o.seed });
    describe = `GPT ${o.size}, ${(model.numParameters() / 1e6).toFixed(2)}M parameters (${config.n_layer} layers, d=${config.n_embd}, ${config.n_head} heads, context ${ctx})`;
  } else {
    const preset = BERT_PRESETS[o.size];
    ctx = o.ctx ?? preset.max_position_embeddings!;
    const pad = tokenizer.special("[PAD]");
    const config = bertConfig({ vocab_size: tokenizer.vocabSize, ...preset, max_position_embeddings: Math.max(ctx, preset.max_position_embeddings ?? ctx), ...(pad !== undefined ? { pad_token_id: pad } : {}) });
    model = new BertForMaskedLM(config, { seed: o.seed });
    describe = `BERT ${o.size}, ${(model.numParameters() / 1e6).toFixed(2)}M parameters (${config.num_hidden_layers} layers, d=${config.hidden_size}, ${config.num_attention_heads} heads, context ${ctx})`;
  }
  const maskToken = tokenizer.special("[MASK]");
  if (o.objective === "mlm" && maskToken === undefined) throw new Error("--objective mlm: the tokenizer has no [MASK] token");
  const task = o.objective === "clm" ? clm : mlm({ maskToken: maskToken!, vocabSize: tokenizer.vocabSize, specialIds: specials });
  if (o.device !== undefined) model.to(o.device);
  const single = languageModeling(model, task, {
    train: corpus.train, val: corpus.val, batch: o.batch, ctx, evalWindows: 64, bytesPerToken: o.objective === "clm" ? corpus.bytesPerToken : undefined,
    device: o.device,
  });
  let objective = (dp === null ? single : dp.objective(single)) as Objective<unknown>;
  if (o.objective === "embed") {
    const pooling = o.pooling ?? poolingOf(model);
    choosePooling(model, pooling);
    objective = sentenceEmbedding(model, {
      train: corpus.train, val: corpus.val, batch: o.batch, span: ctx, pooling, causal: can(model, "generate"), padId: tokenizer.eot, views: o.views, temperature: o.temperature,
      parallel: dp ?? undefined,
    }) as Objective<unknown>;
    describe += `, ${pooling} pooling, ${o.views ?? "dropout"} views, spans of up to ${ctx} tokens`;
  }
  const trainer = new Trainer({
    model, objective, outDir, parallel: dp?.attach, gradAccum: o.gradAccum, lr: o.lr, warmup: o.warmup, seconds: o.seconds, tokens: o.tokens, steps: o.steps,
    evalEvery: o.evalEvery, checkpointEvery: o.checkpointEvery, seed: o.seed, quiet: o.quiet, label: "pretrain", precision: o.precision,
  });
  const resumed = trainer.resume();
  if (!o.quiet) {
    console.log(`model: ${describe}, batch ${o.batch}x${o.gradAccum}${(o.precision ?? defaultPrecision()) === "bf16" ? `, bf16 matrix products (${lowpDescription()})` : ""}${dp === null ? "" : ` over ${dp.world.size} ranks (${o.batch / dp.world.size} rows each${o.shardOptimizer ? ", optimizer sharded" : ""})`}`);
    if (resumed !== null) console.log(`resuming from the checkpoint at step ${resumed}`);
  }
  const result = await trainer.run();
  const parallel = dp?.stats();
  if (dp !== null && !dp.world.leader) return { outDir, tokenizer, corpus, model, result, unigram: NaN, parallel };
  saveModel(outDir, model, { objective: o.objective === "embed" ? "embed" : can(model, "generate") ? "clm" : "mlm", tokenizer: m.tokenizer.fingerprint, ...(o.init !== undefined ? { init: o.init } : {}) });
  const unigram = unigramBaseline(corpus.train, corpus.val, tokenizer.vocabSize);
  writeFileSync(join(outDir, "summary.json"), JSON.stringify({
    objective: o.objective, ...(o.objective === "embed" ? { init: o.init ?? null, pooling: poolingOf(model), views: o.views ?? "dropout", valTop1: [...result.history].reverse().find((h) => h.scores?.valTop1 !== undefined)?.scores?.valTop1 ?? null } : {}),
    size: o.size, precision: o.precision ?? defaultPrecision(), params: model.numParameters(), steps: result.steps, tokens: result.seen, seconds: Math.round(result.seconds), schedule: result.schedule,
    valLoss: result.valLoss, valPerplexity: Math.exp(result.valLoss), valBitsPerByte: result.valLoss / Math.LN2 / corpus.bytesPerToken,
    unigramLoss: unigram, unigramPerplexity: Math.exp(unigram), unigramBitsPerByte: unigram / Math.LN2 / corpus.bytesPerToken, data: o.data,
  }, null, 2) + "\n");
  return { objective: o.objective, outDir, tokenizer, corpus, model, result, unigram, parallel };
}

/** Corpus preparation progress on stderr: one updating line per stage (MB/s, documents, tokens, ETA). */
function corpusProgress(): (p: PrepareProgress) => void {
  let bar: Progress | null = null, stage = "", t0 = 0;
  return (p) => {
    if (p.stage !== stage) {
      bar?.done();
      stage = p.stage;
      bar = new Progress(p.stage === "scan" ? "corpus: reading" : "corpus: tokenizing");
      t0 = performance.now();
    }
    const rate = p.bytes / 1e6 / Math.max(1e-3, (performance.now() - t0) / 1000);
    const mb = (n: number) => (n / 1e6).toFixed(p.totalBytes < 1e8 ? 1 : 0);
    const fields: Record<string, string> = { "MB/s": rate.toFixed(1), MB: `${mb(p.bytes)}/${mb(p.totalBytes)}`, docs: p.documents.toLocaleString("en-US") };
    if (p.stage === "tokenize") fields.tokens = p.tokens.toLocaleString("en-US");
    const finished = p.bytes >= p.totalBytes;
    bar!.update(p.totalBytes > 0 ? p.bytes / p.totalBytes : 0, fields, finished);
    if (finished && p.stage === "tokenize") {
      bar!.done();
      bar = null;
      stage = "";
    }
  };
}

export function printReport(run: PretrainRun): void {
  const { result, unigram, corpus } = run;
  const bpt = corpus.bytesPerToken;
  console.log("");
  console.log(`trained on ${result.seen.toLocaleString("en-US")} tokens in ${formatSeconds(result.seconds)} (${result.steps} steps${result.stoppedBy === "signal" ? ", interrupted" : ""})`);
  if (run.objective === "embed") {
    const top1 = [...result.history].reverse().find((h) => h.scores?.valTop1 !== undefined)?.scores?.valTop1;
    console.log(`validation  InfoNCE ${result.valLoss.toFixed(3)} nats · neighbouring-span retrieval top-1 ${top1 === undefined ? "n/a" : `${(100 * top1).toFixed(1)}%`} (pooling ${poolingOf(run.model)})`);
    return;
  }
  if (can(run.model, "fill-mask")) {
    console.log(`validation  masked-token loss ${result.valLoss.toFixed(3)} nats · perplexity ${Math.exp(result.valLoss).toFixed(1)}`);
    console.log(`unigram     loss ${unigram.toFixed(3)} nats/token · perplexity ${Math.exp(unigram).toFixed(1)}`);
    return;
  }
  console.log(`validation  loss ${result.valLoss.toFixed(3)} nats/token · perplexity ${Math.exp(result.valLoss).toFixed(1)} · ${(result.valLoss / Math.LN2 / bpt).toFixed(3)} bits/byte`);
  console.log(`unigram     loss ${unigram.toFixed(3)} nats/token · perplexity ${Math.exp(unigram).toFixed(1)} · ${(unigram / Math.LN2 / bpt).toFixed(3)} bits/byte`);
}

export async function runPretrain(argv: string[]): Promise<void> {
  const at = argv.findIndex((a) => a === "--objective" || a.startsWith("--objective="));
  const objectiveArg = at < 0 ? undefined : argv[at].includes("=") ? argv[at].split("=")[1] : argv[at + 1];
  if (objectiveArg === "contrastive") return runPretrainContrastive(argv);
  const { values } = parseArgs({
    args: argv,
    options: {
      objective: { type: "string" }, size: { type: "string" }, data: { type: "string", multiple: true }, time: { type: "string" }, tokens: { type: "string" },
      steps: { type: "string" }, out: { type: "string" }, tokenizer: { type: "string" }, vocab: { type: "string" }, batch: { type: "string" }, ctx: { type: "string" },
      lr: { type: "string" }, warmup: { type: "string" }, "grad-accum": { type: "string" }, "eval-every": { type: "string" }, "checkpoint-every": { type: "string" },
      seed: { type: "string" }, init: { type: "string" }, pooling: { type: "string" }, views: { type: "string" }, temperature: { type: "string" }, "sample-mb": { type: "string" }, "prep-memory-mb": { type: "string" }, "prep-threads": { type: "string" }, help: { type: "boolean", short: "h" },
      procs: { type: "string" }, "bucket-mb": { type: "string" }, "shard-optimizer": { type: "boolean" }, precision: { type: "string" }, device: { type: "string" },
    },
  });
  if (values.help) {
    console.log(pretrainHelp);
    return;
  }
  const objective = oneOf("objective", values.objective ?? "clm", ["clm", "mlm", "embed", "contrastive"]);
  if (objective === "contrastive") return runPretrainContrastive(argv);
  // Every flag is parsed and checked here (and again by pretrain) before any tokenizer training or sharding.
  const options = resolvePretrainOptions({
    objective, size: values.size, data: values.data, outDir: values.out ?? `runs/${objective}`,
    seconds: values.time === undefined ? undefined : parseDuration(values.time), tokens: optionalInt("tokens", values.tokens, 1), steps: optionalInt("steps", values.steps, 1),
    tokenizerPath: values.tokenizer, vocab: optionalInt("vocab", values.vocab, 261), batch: optionalInt("batch", values.batch, 1), ctx: optionalInt("ctx", values.ctx, 1),
    lr: values.lr === undefined ? undefined : parsePositiveArg("lr", values.lr, 0), warmup: optionalInt("warmup", values.warmup, 0),
    gradAccum: optionalInt("grad-accum", values["grad-accum"], 1), evalEvery: optionalInt("eval-every", values["eval-every"], 1),
    checkpointEvery: optionalInt("checkpoint-every", values["checkpoint-every"], 1), seed: optionalInt("seed", values.seed, 0),
    sampleMb: values["sample-mb"] === undefined ? undefined : parsePositiveArg("sample-mb", values["sample-mb"], 16),
    prepMemoryMb: values["prep-memory-mb"] === undefined ? undefined : parsePositiveArg("prep-memory-mb", values["prep-memory-mb"], 256),
    prepThreads: optionalInt("prep-threads", values["prep-threads"], 0),
    bucketMb: values["bucket-mb"] === undefined ? undefined : parsePositiveArg("bucket-mb", values["bucket-mb"], 25),
    shardOptimizer: values["shard-optimizer"], precision: values.precision as Precision | undefined, device: values.device,
    init: values.init, pooling: values.pooling as Pooling | undefined, views: values.views as EmbedViews | undefined,
    temperature: values.temperature === undefined ? undefined : parsePositiveArg("temperature", values.temperature, 0.05),
  });
  const procs = optionalInt("procs", values.procs, 1);
  if (procs !== undefined && procs > 1 && launchedRank() === null) {
    await runRanks(procs, "pretrain", argv, { flag: "batch", value: options.batch }, "; rerun the same command to resume from the newest checkpoint");
    return;
  }
  const run = await pretrain(options);
  if (run.parallel !== undefined && run.parallel.rank !== 0) return;
  printReport(run);
  if (run.parallel !== undefined) {
    const p = run.parallel;
    console.log(`data-parallel: ${p.world} ranks, ${p.buckets} gradient buckets, communication ${p.commSeconds.toFixed(2)} s over ${p.steps} steps, ${(100 * p.hiddenShare).toFixed(0)}% hidden behind backward; optimizer state ${(p.optimizerBytes / 1e6).toFixed(2)} MB on rank 0`);
  }
  console.log(`saved ${run.outDir}: config.json, model.safetensors, tokenizer.json, checkpoints/, metrics.jsonl, loss.svg`);
}
