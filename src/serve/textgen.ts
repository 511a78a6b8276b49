/**
 * The one generator behind completions and chat, streamed or not: it runs `n` sequences on
 * the model's scheduler (the base's, with a LoRA adapter's factors or none; a full fine-tune's own), turns tokens into text increments (holding back bytes of an
 * unfinished UTF-8 character and text that may be the start of a stop sequence), cuts at the
 * first stop sequence, and ends with the usage. A streaming reply writes each delta as an SSE
 * event; a non-streaming reply concatenates them.
 *
 *     for await (const d of textDeltas(await host.generator(resolved, id), base.tok, params, signal)) ...   // { index, text, tokens, finishReason }
 */
import type { TextTokenizer } from "../data/tokenizer.js";
import type { Generator } from "./host.js";
import type { TokenConstraint, TokenEvent } from "./scheduler.js";
import { apiError } from "./errors.js";

export interface TextParams {
  prompt: number[];
  n: number;
  maxTokens: number;
  temperature: number;
  topP: number;
  seed: number;
  stop: string[];
  /** null: no logprobs; k >= 0: the sampled token's and the top k alternatives'. */
  topLogprobs: number | null;
  /** A fresh token constraint for each choice (response_format), or none. */
  constraint?: () => TokenConstraint;
  /** The caller's tenant: its queued requests are counted (Scheduler.queuedRequests). */
  tenant?: string;
}

export interface TextDelta {
  index: number;
  text: string;
  /** The tokens this delta's text came from (with log-probabilities). */
  tokens: TokenEvent[];
  finishReason: "stop" | "length" | null;
}

export interface TextUsage {
  promptTokens: number;
  completionTokens: number;
  computeSeconds: number;
}

/** Longest suffix of `text` that is a proper prefix of some stop sequence. */
function pendingStopPrefix(text: string, stops: string[]): number {
  let keep = 0;
  for (const s of stops) {
    for (let k = Math.min(s.length - 1, text.length); k > keep; k--) {
      if (text.endsWith(s.slice(0, k))) {
        keep = k;
        break;
      }
    }
  }
  return keep;
}

export async function* textDeltas({ scheduler, lora: adapter }: Generator, tok: TextTokenizer, p: TextParams, signal: AbortSignal): AsyncGenerator<TextDelta, TextUsage> {
  const ctx = scheduler.model.config.n_positions;
  if (p.prompt.length >= ctx) {
    throw apiError("context_length_exceeded", `This model's maximum context length is ${ctx} tokens; your prompt has ${p.prompt.length} tokens. Shorten the prompt.`, "messages");
  }
  const inner = new AbortController();
  const abort = () => inner.abort();
  signal.addEventListener("abort", abort, { once: true });
  const queue: TextDelta[] = [];
  let wake: (() => void) | null = null;
  let failure: unknown = null;
  let remaining = p.n;
  const usage: TextUsage = { promptTokens: p.prompt.length, completionTokens: 0, computeSeconds: 0 };
  const push = (d: TextDelta) => {
    queue.push(d);
    const w = wake;
    wake = null;
    w?.();
  };

  const request = {};  // the choices' sequences count as one queued request
  const runChoice = async (index: number): Promise<void> => {
    const tokens: number[] = [];
    let pending: TokenEvent[] = [];
    let emitted = 0;
    let finish: TextDelta["finishReason"] = null;
    // This choice's own cancel (a stop sequence ends it alone), also fired by the request's.
    const own = new AbortController();
    const stopOwn = () => own.abort();
    inner.signal.addEventListener("abort", stopOwn, { once: true });
    const it = scheduler.submit({
      prompt: p.prompt, adapter, maxTokens: p.maxTokens, temperature: p.temperature, topP: p.topP,
      seed: p.seed + index, stopTokens: [tok.eot], logprobs: p.topLogprobs !== null, topLogprobs: p.topLogprobs ?? 0, signal: own.signal,
      ...(p.constraint !== undefined ? { constraint: p.constraint() } : {}),
      tenant: p.tenant, request,
    });
    let r = await it.next();
    for (; !r.done; r = await it.next()) {
      tokens.push(r.value.token);
      pending.push(r.value);
      usage.completionTokens++;
      const full = tok.decode(tokens);
      let cut = -1;
      for (const s of p.stop) {
        const at = full.indexOf(s, Math.max(0, emitted - s.length));
        if (at >= 0 && (cut < 0 || at < cut)) cut = at;
      }
      if (cut >= 0) {
        push({ index, text: full.slice(emitted, Math.max(cut, emitted)), tokens: pending, finishReason: "stop" });
        finish = "stop";
        own.abort();
        // Drain to the sequence's end (for its compute time); tokens sampled before the cancel took effect are dropped.
        do r = await it.next(); while (!r.done);
        break;
      }
      let safe = full.length;
      while (safe > emitted && full.charCodeAt(safe - 1) === 0xfffd) safe--;
      safe -= pendingStopPrefix(full.slice(emitted, safe), p.stop);
      if (safe > emitted) {
        push({ index, text: full.slice(emitted, safe), tokens: pending, finishReason: null });
        emitted = safe;
        pending = [];
      }
    }
    inner.signal.removeEventListener("abort", stopOwn);
    if (r.done) usage.computeSeconds += r.value.computeSeconds;
    if (finish === null) {
      const reason = r.done && r.value.finishReason === "stop" ? "stop" : "length";
      if (!r.done || r.value.finishReason !== "cancelled") push({ index, text: tok.decode(tokens).slice(emitted), tokens: pending, finishReason: reason });
    }
  };

  const tasks = Array.from({ length: p.n }, (_, i) => runChoice(i).catch((e: unknown) => {
    failure ??= e;
    inner.abort();
  }).finally(() => {
    remaining--;
    push({ index: -1, text: "", tokens: [], finishReason: null });
  }));
  try {
    for (;;) {
      while (queue.length > 0) {
        const d = queue.shift()!;
        if (d.index >= 0) yield d;
      }
      if (failure !== null) throw failure;
      if (remaining === 0) break;
      await new Promise<void>((resolve) => (wake = resolve));
    }
    await Promise.all(tasks);
    return usage;
  } finally {
    signal.removeEventListener("abort", abort);
    inner.abort();
  }
}
