/**
 * The body parameters each OpenAI route accepts, in one explicit list per route. A parameter
 * not on its route's list is a 400 naming it: OpenAI parameters this server does not implement
 * (tools, audio, logit_bias...) say so, and other names are "unrecognized". Nothing is
 * silently ignored. Some parameters are accepted only at their neutral value (a penalty of 0,
 * an empty logit_bias), which is what the official client sends when a caller spells it out.
 *
 *     acceptOnly(b, "chat");   // throws apiError("unknown_parameter" | "invalid_value", ..., name)
 */
import { apiError } from "./errors.js";
import type { Body } from "./params.js";

export type RouteName = "completions" | "chat" | "embeddings" | "fine_tuning";

/** What each route reads (the routes parse them; this list only admits them). */
export const ACCEPTED: Record<RouteName, readonly string[]> = {
  completions: ["model", "prompt", "max_tokens", "temperature", "top_p", "n", "stream", "stream_options", "logprobs", "echo", "stop", "seed", "best_of", "suffix", "user",
    "presence_penalty", "frequency_penalty", "logit_bias"],
  chat: ["model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stream", "stream_options", "logprobs", "top_logprobs", "stop", "seed",
    "response_format", "user", "presence_penalty", "frequency_penalty", "logit_bias", "store", "metadata", "parallel_tool_calls", "tool_choice"],
  embeddings: ["model", "input", "encoding_format", "dimensions", "user"],
  fine_tuning: ["model", "training_file", "validation_file", "method", "hyperparameters", "suffix", "seed", "audit", "metadata"],
};

/** OpenAI parameters this server knows of and does not implement, with why. */
const UNSUPPORTED: Record<string, string> = {
  tools: "these models cannot call tools",
  functions: "these models cannot call functions",
  function_call: "these models cannot call functions",
  audio: "these models produce text only",
  modalities: "these models produce text only",
  prediction: "predicted outputs are not implemented",
  reasoning_effort: "these models do not reason in hidden tokens",
  web_search_options: "there is no web search",
  service_tier: "there is one service tier",
  integrations: "there are no integrations",
};

/** Neutral values accepted for parameters this server does not implement otherwise. */
const NEUTRAL: Record<string, { ok: (v: unknown) => boolean; why: string }> = {
  presence_penalty: { ok: (v) => v === 0, why: "repetition penalties are not implemented (only 0 is accepted)" },
  frequency_penalty: { ok: (v) => v === 0, why: "repetition penalties are not implemented (only 0 is accepted)" },
  logit_bias: { ok: (v) => v !== null && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 0, why: "logit biases are not implemented (only {} is accepted)" },
  store: { ok: (v) => v === false, why: "stored completions are not implemented (only false is accepted)" },
  tool_choice: { ok: (v) => v === "none", why: "these models cannot call tools (only \"none\" is accepted)" },
  parallel_tool_calls: { ok: (v) => v === false, why: "these models cannot call tools (only false is accepted)" },
  metadata: { ok: (v) => v !== null && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 0, why: "metadata is not stored (only {} is accepted)" },
};

/** Refuses any body parameter the route does not take, naming it; null and absent values pass. */
export function acceptOnly(b: Body, route: RouteName): void {
  const accepted = ACCEPTED[route];
  for (const [name, v] of Object.entries(b)) {
    if (!accepted.includes(name)) {
      const why = UNSUPPORTED[name];
      if (why !== undefined) throw apiError("invalid_value", `'${name}' is not supported by this server: ${why}.`, name);
      throw apiError("unknown_parameter", `Unrecognized request argument supplied: '${name}'. This endpoint takes ${accepted.map((k) => `'${k}'`).join(", ")}.`, name);
    }
    const neutral = NEUTRAL[name];
    if (neutral !== undefined && v !== null && v !== undefined && !neutral.ok(v)) {
      throw apiError("invalid_value", `'${name}' is not supported by this server: ${neutral.why}.`, name);
    }
  }
}
