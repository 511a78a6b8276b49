/**
 * Every limit `plinth serve` enforces, as a flag: per-request sizes, per-tenant concurrency and
 * queue depths, the encoder queue's piece time and share, job size caps and the time slice, and
 * default limits for keys without their own. One table drives the parsing (checked before the
 * server starts), the server options and the `--help` lines, whose defaults are the server's own
 * constants, so the help cannot drift from what the server does.
 *
 *     const o = limitOptions({ "max-inputs": "64", "slice-seconds": "30" });   // { encoder: { maxInputs: 64 }, jobs: { sliceSeconds: 30 } }
 */
import { DEFAULT_ENCODER_QUEUE } from "../serve/encoder_queue.js";
import { DEFAULT_JOB_POLICY } from "../serve/jobs.js";
import { DEFAULT_ENCODER_LIMITS } from "../serve/routes/encoders.js";
import { DEFAULT_GENERATION_LIMITS } from "../serve/routes/generation.js";
import type { ServerOptions } from "../serve/app.js";
import { UsageError } from "./args.js";

type Section = "encoder" | "jobs" | "generation" | "keyDefaults" | "top";

interface LimitFlag {
  flag: string;
  section: Section;
  /** The option's name in its section of ServerOptions. */
  key: string;
  help: string;
  /** What the server uses without the flag ("none" for no limit). */
  fallback: number | "none";
  /** Integer flags; otherwise a number. */
  integer: boolean;
  min: number;
  /** Inclusive upper bound, if any. */
  max?: number;
  /** A lower bound that is excluded (a share of time must be > 0). */
  above?: number;
  /** The option's value from the flag's (MiB flags give bytes). */
  scale?: number;
  group: string;
}

const MiB = 1 << 20;

export const LIMIT_FLAGS: readonly LimitFlag[] = [
  { group: "Per request", flag: "body-limit-mb", section: "top", key: "bodyLimit", help: "JSON request body size, MiB", fallback: 1, integer: false, min: 0, above: 0, scale: MiB },
  { group: "Per request", flag: "max-file-mb", section: "top", key: "maxFileBytes", help: "upload size for /v1/files, MiB", fallback: 32, integer: false, min: 0, above: 0, scale: MiB },
  { group: "Per request", flag: "max-choices", section: "generation", key: "maxChoices", help: "choices of one completion or chat (n, best_of)", fallback: DEFAULT_GENERATION_LIMITS.maxChoices, integer: true, min: 1, max: 128 },
  { group: "Per request", flag: "max-completion-tokens", section: "generation", key: "maxCompletionTokens", help: "tokens one choice may generate (max_tokens)", fallback: DEFAULT_GENERATION_LIMITS.maxCompletionTokens, integer: true, min: 1 },
  { group: "Per request", flag: "max-inputs", section: "encoder", key: "maxInputs", help: "inputs of one embeddings, classifications or zero-shot request", fallback: DEFAULT_ENCODER_LIMITS.maxInputs, integer: true, min: 1 },
  { group: "Per request", flag: "max-labels", section: "encoder", key: "maxLabels", help: "labels of one zero-shot request", fallback: DEFAULT_ENCODER_LIMITS.maxLabels, integer: true, min: 2 },
  { group: "Per request", flag: "max-templates", section: "encoder", key: "maxTemplates", help: "prompt templates of one image zero-shot request", fallback: DEFAULT_ENCODER_LIMITS.maxTemplates, integer: true, min: 1 },
  { group: "Per request", flag: "max-pairs", section: "encoder", key: "maxPairs", help: "inputs × labels of one zero-shot request", fallback: DEFAULT_ENCODER_LIMITS.maxPairs, integer: true, min: 1 },
  { group: "Per request", flag: "max-encoder-tokens", section: "encoder", key: "maxTokens", help: "tokens the model reads for one encoder request (after truncation)", fallback: DEFAULT_ENCODER_LIMITS.maxTokens, integer: true, min: 1 },
  { group: "Per tenant and queues", flag: "encoder-per-tenant", section: "encoder", key: "maxPerTenant", help: "encoder requests one tenant may have queued or running (beyond: 429)", fallback: DEFAULT_ENCODER_QUEUE.maxPerTenant, integer: true, min: 1 },
  { group: "Per tenant and queues", flag: "encoder-piece-ms", section: "encoder", key: "unitMs", help: "wall time of one encoder piece on the event loop, ms (half while chats generate)", fallback: DEFAULT_ENCODER_QUEUE.unitMs, integer: false, min: 0, above: 0, max: 1000 },
  { group: "Per tenant and queues", flag: "encoder-share", section: "encoder", key: "generatingShare", help: "share of the event loop encoder pieces may take while chats generate, in (0, 1]", fallback: DEFAULT_ENCODER_QUEUE.generatingShare, integer: false, min: 0, above: 0, max: 1 },
  { group: "Per tenant and queues", flag: "queued-per-tenant", section: "generation", key: "maxQueuedPerTenant", help: "chat/completion requests one tenant may have waiting for a batch slot (beyond: 429)", fallback: DEFAULT_GENERATION_LIMITS.maxQueuedPerTenant, integer: true, min: 1 },
  { group: "Per tenant and queues", flag: "jobs-per-tenant", section: "jobs", key: "maxPerTenant", help: "fine-tuning jobs one tenant may run at once", fallback: DEFAULT_JOB_POLICY.maxPerTenant, integer: true, min: 1 },
  { group: "Fine-tuning jobs", flag: "job-max-examples", section: "jobs", key: "maxJobExamples", help: "training examples (steps × batch_size) one job may plan (beyond: 400)", fallback: DEFAULT_JOB_POLICY.maxJobExamples, integer: true, min: 1 },
  { group: "Fine-tuning jobs", flag: "slice-seconds", section: "jobs", key: "sliceSeconds", help: "training seconds before a job yields its worker to another tenant's waiting job (0: never)", fallback: DEFAULT_JOB_POLICY.sliceSeconds, integer: false, min: 0 },
  { group: "Fine-tuning jobs", flag: "worker-nice", section: "jobs", key: "workerNice", help: "CPU nice value of job workers (0: the server's priority)", fallback: DEFAULT_JOB_POLICY.workerNice, integer: true, min: 0, max: 19 },
  { group: "Keys without their own limits", flag: "default-rpm", section: "keyDefaults", key: "rpm", help: "requests per minute", fallback: "none", integer: true, min: 1 },
  { group: "Keys without their own limits", flag: "default-token-quota", section: "keyDefaults", key: "tokenQuota", help: "tokens in all (a hard limit, like a key's own)", fallback: "none", integer: true, min: 1 },
];

/** parseArgs options for the limit flags. */
export const limitParseOptions = Object.fromEntries(LIMIT_FLAGS.map((f) => [f.flag, { type: "string" as const }]));

/** Checks one flag's value; a UsageError names the flag and what it takes. */
function parseLimit(f: LimitFlag, text: string): number {
  const v = Number(text);
  const range = `${f.above !== undefined ? `> ${f.above}` : `>= ${f.min}`}${f.max !== undefined ? ` and <= ${f.max}` : ""}`;
  const ok = text.trim() !== "" && Number.isFinite(v) && (!f.integer || Number.isInteger(v)) && v >= f.min && (f.above === undefined || v > f.above) && (f.max === undefined || v <= f.max);
  if (!ok) throw new UsageError(`--${f.flag} must be ${f.integer ? "an integer" : "a number"} ${range}, got "${text}"`);
  return v;
}

/** The server options the limit flags given set (nothing for a flag not given: the server's default). */
export function limitOptions(values: Record<string, unknown>): Pick<ServerOptions, "bodyLimit" | "maxFileBytes" | "encoder" | "jobs" | "generation" | "keyDefaults"> {
  const out: Record<string, Record<string, number> | number> = {};
  for (const f of LIMIT_FLAGS) {
    const text = values[f.flag];
    if (text === undefined) continue;
    if (typeof text !== "string") throw new UsageError(`--${f.flag} takes a value`);
    const parsed = parseLimit(f, text);
    const v = f.scale !== undefined ? Math.floor(parsed * f.scale) : parsed;
    if (f.section === "top") out[f.key] = v;
    else ((out[f.section] ??= {}) as Record<string, number>)[f.key] = v;
  }
  return out as ReturnType<typeof limitOptions>;
}

/** The limit flags' part of `plinth serve --help`, grouped, with the server's defaults. */
export function limitsHelp(): string {
  const lines: string[] = ["Limits (each checked before the server starts; the default in brackets):"];
  let group = "";
  for (const f of LIMIT_FLAGS) {
    if (f.group !== group) lines.push(`  ${(group = f.group)}:`);
    const name = `--${f.flag} ${f.integer ? "N" : "X"}`;
    lines.push(`    ${name.padEnd(27)} ${f.help} [${typeof f.fallback === "number" ? f.fallback.toLocaleString("en-US") : f.fallback}]`);
  }
  return lines.join("\n");
}
