/**
 * POST /v1/completions and POST /v1/chat/completions. Both parse their parameters, resolve
 * `model` to a base and the caller's adapter, and drive textgen.ts's one generator: as SSE
 * events when `stream` is true, as one JSON body otherwise. A client that disconnects
 * cancels its sequences at the next scheduler step.
 */
import { randomBytes } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { now } from "../../registry/index.js";
import { ApiError, apiError } from "../errors.js";
import type { Generator, LoadedModel, ModelHost, Resolved } from "../host.js";
import type { TextTokenizer } from "../../data/tokenizer.js";
import { type ChatTemplate, chatTemplateFor } from "../../tokenizer/chat_template.js";
import { chatPromptIds } from "../../tasks/chat.js";
import { type Body, bodyOf, bool, num, str, strings } from "../params.js";
import type { TokenEvent } from "../scheduler.js";
import { acceptOnly } from "../openai_params.js";
import { ANY_OBJECT, type Schema, compileSchema, jsonConstraint } from "../json_constraint.js";
import type { BPETokenizer } from "../../tokenizer/bpe.js";
import { type TextDelta, type TextParams, type TextUsage, textDeltas } from "../textgen.js";
import { type RequestMeter, admitGeneration } from "../quota.js";
import type { Registry } from "../../registry/index.js";

/** Per-request bounds of /v1/completions and /v1/chat/completions, and the per-tenant queue cap. */
export interface GenerationLimits {
  /** Choices one request may ask for (n, and best_of) (default 8). */
  maxChoices?: number;
  /** Tokens one choice may generate (max_tokens, max_completion_tokens) (default 4,096). */
  maxCompletionTokens?: number;
  /**
   * Requests one tenant may have waiting for a batch slot, over all bases (default 64): one
   * more is a 429 with retry-after, so a tenant cannot line up work ahead of everyone else's.
   */
  maxQueuedPerTenant?: number;
}

export const DEFAULT_GENERATION_LIMITS: Required<GenerationLimits> = { maxChoices: 8, maxCompletionTokens: 4096, maxQueuedPerTenant: 64 };

/** Refuses (429) a request of a tenant that has `cap` requests waiting for a batch slot already. */
function checkQueued(host: ModelHost, tenant: string, cap: number): void {
  let queued = 0;
  for (const s of host.schedulers()) queued += s.queuedRequests(tenant);
  if (queued < cap) return;
  throw new ApiError("rate_limit_exceeded",
    `Too many generation requests waiting for a batch slot for this tenant: ${queued} queued, at most ${cap} at once (completions and chat completions together). Retry when one has started.`,
    null, { "retry-after": "1" });
}

export interface GenerationDeps { host: ModelHost; registry: Registry; limits?: GenerationLimits }

interface ChatMessage { role: string; content: string }

function messagesOf(b: Body): ChatMessage[] {
  const v = b.messages;
  if (v === undefined) throw apiError("missing_required_parameter", "Missing required parameter: 'messages'.", "messages");
  if (!Array.isArray(v) || v.length === 0) throw apiError("invalid_value", "Invalid value for 'messages': expected a non-empty array of {role, content}.", "messages");
  return v.map((m: unknown, i) => {
    const param = `messages[${i}]`;
    if (m === null || typeof m !== "object") throw apiError("invalid_value", `Invalid type for '${param}': expected an object with role and content.`, param);
    const { role, content } = m as { role?: unknown; content?: unknown };
    if (typeof role !== "string" || !["system", "developer", "user", "assistant", "tool"].includes(role)) {
      throw apiError("invalid_value", `Invalid value for '${param}.role': ${JSON.stringify(role)}; expected system, developer, user, assistant or tool.`, `${param}.role`);
    }
    if (typeof content === "string") return { role, content };
    if (Array.isArray(content) && content.every((p) => p !== null && typeof p === "object" && (p as { type?: unknown }).type === "text" && typeof (p as { text?: unknown }).text === "string")) {
      return { role, content: content.map((p) => (p as { text: string }).text).join("") };
    }
    throw apiError("invalid_value", `Invalid value for '${param}.content': expected a string or an array of text parts.`, `${param}.content`);
  });
}

/** The prompt a chat becomes: the base's chat template (tokenizer_config.json, else the default, written on first use). */
const templates = new WeakMap<object, ChatTemplate>();
function chatPrompt(base: LoadedModel, tok: TextTokenizer, messages: ChatMessage[]): number[] {
  let t = templates.get(base);
  if (t === undefined) templates.set(base, (t = chatTemplateFor(base.dir, { write: true })));
  return chatPromptIds(t, tok, messages);
}

function commonParams(b: Body, prompt: number[], limits: Required<GenerationLimits>): Omit<TextParams, "topLogprobs"> {
  const maxTokens = limits.maxCompletionTokens;
  const stop = strings(b, "stop", { max: 4 }) ?? [];
  if (stop.some((s) => s === "")) throw apiError("invalid_value", "Invalid value for 'stop': stop sequences must be non-empty.", "stop");
  return {
    prompt,
    n: num(b, "n", { min: 1, max: limits.maxChoices, integer: true, fallback: 1 }),
    maxTokens: num(b, "max_completion_tokens", { min: 1, max: maxTokens, integer: true, fallback: num(b, "max_tokens", { min: 1, max: maxTokens, integer: true, fallback: Math.min(16, maxTokens) }) }),
    temperature: num(b, "temperature", { min: 0, max: 2, fallback: 1 }),
    topP: num(b, "top_p", { min: Number.MIN_VALUE, max: 1, fallback: 1 }),
    seed: num(b, "seed", { integer: true, min: 0, max: 2 ** 31, fallback: Math.floor(Math.random() * 2 ** 31) }),
    stop,
  };
}

function watchDisconnect(req: FastifyRequest, reply: FastifyReply): AbortController {
  const ac = new AbortController();
  reply.raw.on("close", () => {
    if (!reply.raw.writableFinished) ac.abort();
  });
  req.raw.on("aborted", () => ac.abort());
  return ac;
}

type Render = {
  object: string;
  chunkObject: string;
  first?: (index: number) => unknown;
  delta: (d: TextDelta) => unknown;
  final: (index: number, text: string, tokens: TokenEvent[], finish: string) => unknown;
  /** best_of: of the n generated choices, keep this many, those with the highest mean log-probability per token. */
  keep?: number;
};

/** Indices of the `keep` choices with the highest mean token log-probability, best first (ties: lower index). */
export function bestChoices(tokens: TokenEvent[][], keep: number): number[] {
  const mean = tokens.map((t) => t.length === 0 ? -Infinity : t.reduce((s, e) => s + e.logprob, 0) / t.length);
  return mean.map((_, i) => i).sort((a, b) => mean[b] - mean[a] || a - b).slice(0, keep);
}

/**
 * response_format: text (the default), json_object or json_schema (a subset of JSON Schema:
 * json_constraint.ts), both by constrained decoding; other types and schema keywords are refused.
 */
function responseFormat(b: Body, base: LoadedModel): TextParams["constraint"] {
  if (b.response_format === undefined || b.response_format === null) return undefined;
  const f = bodyOf(b.response_format, "response_format");
  if (f.type === "text") return undefined;
  if (f.type !== "json_object" && f.type !== "json_schema") throw apiError("invalid_value", `Invalid value for 'response_format.type': ${JSON.stringify(f.type)}; expected text, json_object or json_schema.`, "response_format.type");
  let schema: Schema = ANY_OBJECT;
  if (f.type === "json_schema") {
    const js = bodyOf(f.json_schema, "response_format.json_schema");
    for (const k of Object.keys(js)) {
      if (!["name", "description", "schema", "strict"].includes(k)) throw apiError("unknown_parameter", `Unrecognized parameter 'response_format.json_schema.${k}'.`, `response_format.json_schema.${k}`);
    }
    str(js, "name", { required: true });
    schema = compileSchema(js.schema ?? { type: "object" });
    if (schema.t !== "object") throw apiError("invalid_value", "Invalid value for 'response_format.json_schema.schema': the top-level schema must be of type object.", "response_format.json_schema.schema");
  }
  const bpe = (base.tok as { bpe?: BPETokenizer }).bpe;
  if (bpe === undefined) throw apiError("invalid_value", `'response_format' is not supported for the model '${base.entry.name}': constrained decoding needs a byte-level BPE tokenizer.`, "response_format");
  const eot = base.tok.eot;
  return () => jsonConstraint(bpe, schema, [eot]);
}

async function serve(deps: GenerationDeps, req: FastifyRequest, reply: FastifyReply, kind: "completion" | "chat", resolved: Resolved, modelId: string, params: TextParams, render: Render, includeUsage: boolean, stream: boolean): Promise<unknown> {
  // A LoRA adapter joins the base's batches; a generative full fine-tune runs on its own copy's scheduler.
  const generator = await deps.host.generator(resolved, modelId);
  // Checked before anything is reserved; from here to the sequences' submission nothing awaits, so the count holds.
  checkQueued(deps.host, req.apiKey.tenant, deps.limits?.maxQueuedPerTenant ?? DEFAULT_GENERATION_LIMITS.maxQueuedPerTenant);
  // The token quota is a hard limit: the worst case (prompt + n × max_tokens, no more than the
  // context holds: the scheduler samples up to ctx - prompt + 1 tokens) is reserved before any
  // work, max_tokens cut to what the key has left.
  const ctx = generator.scheduler.model.config.n_positions;
  const admitted = await admitGeneration(deps.registry, req.apiKey, {
    kind, model: modelId, prompt: params.prompt.length, n: params.n, maxTokens: Math.max(1, Math.min(params.maxTokens, ctx - params.prompt.length + 1)),
  });
  try {
    return await generate(req, reply, kind, modelId, generator, { ...params, maxTokens: admitted.maxTokens, tenant: req.apiKey.tenant }, render, includeUsage, stream, admitted.meter);
  } finally {
    await admitted.meter.settle();  // after a failure: bills what was delivered and releases the reservation (a no-op once settled)
  }
}

async function generate(req: FastifyRequest, reply: FastifyReply, kind: "completion" | "chat", modelId: string, generator: Generator, params: TextParams, render: Render, includeUsage: boolean, stream: boolean, metering: RequestMeter): Promise<unknown> {
  const id = `${kind === "chat" ? "chatcmpl" : "cmpl"}-${randomBytes(12).toString("hex")}`;
  const created = now();
  const ac = watchDisconnect(req, reply);
  const gen = textDeltas(generator, generator.tok, params, ac.signal);
  const meter = (u: TextUsage) => metering.settle({ promptTokens: u.promptTokens, completionTokens: u.completionTokens, computeSeconds: u.computeSeconds });
  const usageBody = (u: TextUsage) => ({ prompt_tokens: u.promptTokens, completion_tokens: u.completionTokens, total_tokens: u.promptTokens + u.completionTokens });
  if (stream) {
    // The first chunk is computed before the headers go out, so errors before any token are plain JSON errors.
    let r = await gen.next();
    reply.hijack();
    // The headers hooks set (x-plinth-replica) go out with the stream too: a hijacked reply skips Fastify's.
    reply.raw.writeHead(200, { ...reply.getHeaders() as Record<string, string>, "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    const send = (payload: unknown) => reply.raw.write(`data: ${JSON.stringify({ id, object: render.chunkObject, created, model: modelId, ...(payload as object) })}\n\n`);
    if (render.first) for (let i = 0; i < params.n; i++) send({ choices: [render.first(i)] });
    try {
      for (; !r.done; r = await gen.next()) {
        metering.deliver(r.value.tokens.length);  // metered before it is written: a crash loses at most the last batch (quota.ts)
        await metering.keepUp();
        send({ choices: [render.delta(r.value)] });
      }
      await meter(r.value);
      if (includeUsage) send({ choices: [], usage: usageBody(r.value) });
      reply.raw.write("data: [DONE]\n\n");
    } catch (e) {
      req.log.error(e);  // the status line is gone already: the error goes to the log and, as an SSE event, to the client
      const message = (e as Error).message;
      reply.raw.write(`data: ${JSON.stringify({ error: { message, type: "server_error", param: null, code: "internal_error" } })}\n\n`);
    }
    reply.raw.end();
    return reply;
  }
  const texts = Array.from({ length: params.n }, () => "");
  const tokens = Array.from({ length: params.n }, (): TokenEvent[] => []);
  const finish = Array.from({ length: params.n }, () => "length");
  let r = await gen.next();
  for (; !r.done; r = await gen.next()) {
    texts[r.value.index] += r.value.text;
    tokens[r.value.index].push(...r.value.tokens);
    if (r.value.finishReason !== null) finish[r.value.index] = r.value.finishReason;
  }
  await meter(r.value);
  const chosen = render.keep !== undefined && render.keep < params.n ? bestChoices(tokens, render.keep) : texts.map((_, i) => i);
  return { id, object: render.object, created, model: modelId, choices: chosen.map((c, i) => render.final(i, texts[c], tokens[c], finish[c])), usage: usageBody(r.value) };
}

export function generationRoutes(deps: GenerationDeps) {
  const limits = { ...DEFAULT_GENERATION_LIMITS, ...deps.limits };
  return async (app: FastifyInstance): Promise<void> => {
    app.post("/v1/completions", async (req, reply) => {
      const b = bodyOf(req.body);
      acceptOnly(b, "completions");
      const model = str(b, "model", { required: true });
      const prompts = strings(b, "prompt", { required: true, max: 1 })!;
      const suffix = str(b, "suffix");
      if (suffix !== undefined && suffix !== "") {
        throw apiError("invalid_value", "'suffix' is not supported by this server: fill-in-the-middle needs a model trained for it, and these GPT-2 models are not.", "suffix");
      }
      const resolved = await deps.host.resolve(req.apiKey.tenant, model);
      const tok = await deps.host.tokenizer(resolved);
      const lp = b.logprobs === null || b.logprobs === undefined ? null : num(b, "logprobs", { min: 0, max: 5, integer: true, fallback: 0 });
      const echo = bool(b, "echo", false);
      if (echo && lp !== null) throw apiError("invalid_value", "'echo' together with 'logprobs' is not supported by this server: the prompt tokens' log-probabilities are not computed. Use echo or logprobs, not both.", "echo");
      const stream = bool(b, "stream", false);
      const common = commonParams(b, Array.from(tok.encode(prompts[0])), limits);
      const bestOf = num(b, "best_of", { min: 1, max: limits.maxChoices, integer: true, fallback: common.n });
      if (bestOf < common.n) throw apiError("invalid_value", `Invalid value for 'best_of': ${bestOf} is less than n (${common.n}); best_of must be at least n.`, "best_of");
      if (stream && b.best_of !== undefined && b.best_of !== null && bestOf > 1) throw apiError("invalid_value", "'best_of' greater than 1 cannot be streamed: the best choices are known only when all are done. Set stream to false.", "best_of");
      // best_of runs best_of choices (each billed) and keeps the n of highest mean token log-probability.
      const params: TextParams = { ...common, n: bestOf, topLogprobs: lp ?? (bestOf > common.n ? 0 : null) };
      if (params.prompt.length === 0) params.prompt = [tok.eot];
      const tokenText = (t: number) => tok.decode([t]);
      // text_offset: where each token's text starts in prompt + completion (per choice, across stream chunks).
      const offsets = new Map<number, number>();
      const logprobs = (toks: TokenEvent[], index: number) => {
        if (lp === null) return null;
        let at = offsets.get(index) ?? prompts[0].length;
        const text_offset = toks.map((t) => { const o = at; at += tokenText(t.token).length; return o; });
        offsets.set(index, at);
        return {
          tokens: toks.map((t) => tokenText(t.token)), token_logprobs: toks.map((t) => t.logprob),
          top_logprobs: toks.map((t) => Object.fromEntries(t.top.map((a) => [tokenText(a.token), a.logprob]))), text_offset,
        };
      };
      const shown = echo ? prompts[0] : "";
      return serve(deps, req, reply, "completion", resolved, model, params, {
        object: "text_completion", chunkObject: "text_completion",
        ...(echo ? { first: (index: number) => ({ index, text: shown, logprobs: null, finish_reason: null }) } : {}),
        delta: (d) => ({ index: d.index, text: d.text, logprobs: logprobs(d.tokens, d.index), finish_reason: d.finishReason }),
        final: (index, text, toks, finish) => ({ index, text: shown + text, logprobs: logprobs(toks, index), finish_reason: finish }),
        keep: common.n,
      }, bodyOf(b.stream_options ?? {}).include_usage === true, stream);
    });

    app.post("/v1/chat/completions", async (req, reply) => {
      const b = bodyOf(req.body);
      acceptOnly(b, "chat");
      const model = str(b, "model", { required: true });
      const messages = messagesOf(b);
      const resolved = await deps.host.resolve(req.apiKey.tenant, model);
      const base = resolved.base, tok = await deps.host.tokenizer(resolved);
      const wantLogprobs = bool(b, "logprobs", false);
      const top = num(b, "top_logprobs", { min: 0, max: 20, integer: true, fallback: 0 });
      if (top > 0 && !wantLogprobs) throw apiError("invalid_value", "Invalid value for 'top_logprobs': it needs 'logprobs' set to true.", "top_logprobs");
      const constraint = responseFormat(b, base);
      const params: TextParams = { ...commonParams(b, chatPrompt(base, tok, messages), limits), topLogprobs: wantLogprobs ? top : null, ...(constraint !== undefined ? { constraint } : {}) };
      const entry = (token: number, logprob: number) => {
        const text = tok.decode([token]);
        return { token: text, logprob, bytes: Array.from(Buffer.from(text, "utf8")) };
      };
      const logprobs = (toks: TokenEvent[]) => !wantLogprobs ? null : {
        content: toks.map((t) => ({ ...entry(t.token, t.logprob), top_logprobs: t.top.map((a) => entry(a.token, a.logprob)) })), refusal: null,
      };
      return serve(deps, req, reply, "chat", resolved, model, params, {
        object: "chat.completion", chunkObject: "chat.completion.chunk",
        first: (index) => ({ index, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }),
        delta: (d) => ({ index: d.index, delta: d.text === "" ? {} : { content: d.text }, logprobs: logprobs(d.tokens), finish_reason: d.finishReason }),
        final: (index, text, toks, finish) => ({ index, message: { role: "assistant", content: text, refusal: null }, logprobs: logprobs(toks), finish_reason: finish }),
      }, bodyOf(b.stream_options ?? {}).include_usage === true, bool(b, "stream", false));
    });
  };
}
