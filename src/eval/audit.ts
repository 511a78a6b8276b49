/**
 * The inherited-defect audit: one probe suite run on a base and on every adapter derived from
 * it. Per probe and adapter the verdict is ok (passes on both), inherited (fails on the base and
 * still fails), fixed (fails on the base, passes on the adapter) or introduced (passes on the
 * base, fails on the adapter). A defect in the base reaches every task built on it: this makes
 * that visible. The base answers label and invariance probes by zero-shot prompting with the
 * suite's task; avoid probes read the language model itself (the adapter's body for adapters).
 *
 *     const report = runAudit({ base: "runs/default", adapters: ["runs/adapters/sentiment-lora"], suite: readProbeSuite("probes/sentiment.json") });
 *     report.blockingFailures;   // > 0: a blocking probe is inherited or introduced somewhere
 */
import { loadAdapted } from "../adapt/apply.js";
import { readAdapterManifest, baseIdentity } from "../adapt/artifact.js";
import { loadBase, promptFor } from "../adapt/base.js";
import { resolveTask } from "../tasks/resolve.js";
import type { Encoder } from "../adapt/probe.js";
import { classifyCausal, continuationLogProbs } from "../adapt/zeroshot.js";
import type { TextTokenizer } from "../data/tokenizer.js";
import { can } from "../models/registry.js";
import { argmax } from "../tasks/metrics.js";
import type { Probe, ProbeSuite } from "./probes.js";

export type Verdict = "ok" | "inherited" | "fixed" | "introduced" | "n/a";

export interface ProbeOutcome {
  pass: boolean | null;
  /** What the model did, e.g. `predicted positive (0.81)`; why it does not apply when pass is null. */
  detail: string;
}

export interface AuditRow {
  probe: string;
  kind: Probe["kind"];
  blocking: boolean;
  base: ProbeOutcome;
  adapters: Record<string, ProbeOutcome & { verdict: Verdict }>;
}

export interface AuditReport {
  suite: string;
  base: string;
  baseSha256: string;
  adapters: { dir: string; method: string; task: string }[];
  rows: AuditRow[];
  /** Blocking probes inherited or introduced by some adapter: [probe, adapter, verdict]. */
  blockingFailures: [string, string, Verdict][];
}

interface Subject {
  labels: string[] | null;
  predict: ((texts: readonly string[]) => number[][]) | null;
  body: Encoder;
  tok: TextTokenizer;
}

function runProbe(p: Probe, s: Subject): ProbeOutcome {
  if (p.kind === "avoid") {
    if (!can(s.body, "generate")) return { pass: null, detail: "avoid probes need a causal LM body" };
    const enc = (t: string): number[] => Array.from(s.tok.encode(t));
    const context = enc(p.prompt);
    const [avoid, prefer] = continuationLogProbs(s.body, [{ context, continuation: enc(p.avoid) }, { context, continuation: enc(p.prefer) }]);
    return { pass: prefer > avoid, detail: `log p(prefer) ${prefer.toFixed(2)} vs log p(avoid) ${avoid.toFixed(2)}` };
  }
  if (s.predict === null || s.labels === null) return { pass: null, detail: "no classifier for the suite's task" };
  const labels = s.labels;
  if (p.kind === "label") {
    if (!labels.includes(p.expect)) return { pass: null, detail: `expects label ${JSON.stringify(p.expect)}, not among [${labels.join(", ")}]` };
    const [probs] = s.predict([p.text]);
    const i = argmax(probs);
    return { pass: labels[i] === p.expect, detail: `predicted ${labels[i]} (${probs[i].toFixed(2)})` };
  }
  const rows = s.predict(p.texts);
  const preds = rows.map(argmax);
  const shift = Math.max(...labels.map((_, j) => Math.max(...rows.map((r) => r[j])) - Math.min(...rows.map((r) => r[j]))));
  const same = preds.every((x) => x === preds[0]);
  return { pass: same && shift <= p.tolerance, detail: `${same ? "same label" : `labels ${preds.map((x) => labels[x]).join("/")}`}, max shift ${shift.toFixed(2)}` };
}

function verdict(base: boolean | null, adapter: boolean | null): Verdict {
  if (base === null || adapter === null) return "n/a";
  if (base && adapter) return "ok";
  if (!base && !adapter) return "inherited";
  return base ? "introduced" : "fixed";
}

export function runAudit({ base, adapters, suite }: { base: string; adapters: string[]; suite: ProbeSuite }): AuditReport {
  const identity = baseIdentity(base);
  const loaded = loadBase(base);
  let baseSubject: Subject = { labels: null, predict: null, body: loaded.model, tok: loaded.tok };
  if (suite.task !== undefined) {
    const task = resolveTask(suite.task);
    const prompt = promptFor(task);
    if (can(loaded.model, "generate")) {
      const gpt = loaded.model;
      baseSubject = {
        ...baseSubject, labels: task.labels,
        predict: (texts) => classifyCausal(gpt, loaded.tok, task.labels, texts.map((text) => ({ text, label: task.labels[0] })), { template: prompt.template, verbalizers: prompt.verbalizers, calibrate: true }).probs,
      };
    }
  }
  const baseOutcomes = suite.probes.map((p) => runProbe(p, baseSubject));
  const rows: AuditRow[] = suite.probes.map((p, i) => ({ probe: p.id, kind: p.kind, blocking: p.blocking, base: baseOutcomes[i], adapters: {} }));
  const listed: AuditReport["adapters"] = [];
  for (const dir of adapters) {
    const manifest = readAdapterManifest(dir);
    const adapted = loadAdapted(dir, base);  // refuses an adapter of another base
    const sameTask = suite.task === undefined || manifest.task === suite.task || manifest.task === resolveTaskName(suite.task);
    const subject: Subject = { labels: sameTask ? adapted.labels : null, predict: sameTask ? adapted.predict : null, body: adapted.body, tok: adapted.tok };
    listed.push({ dir, method: manifest.method, task: manifest.task });
    suite.probes.forEach((p, i) => {
      const o = runProbe(p, subject);
      rows[i].adapters[dir] = { ...o, verdict: verdict(baseOutcomes[i].pass, o.pass) };
    });
  }
  const blockingFailures: [string, string, Verdict][] = [];
  for (const r of rows) {
    if (!r.blocking) continue;
    for (const [dir, o] of Object.entries(r.adapters)) if (o.verdict === "inherited" || o.verdict === "introduced") blockingFailures.push([r.probe, dir, o.verdict]);
    if (adapters.length === 0 && r.base.pass === false) blockingFailures.push([r.probe, base, "inherited"]);
  }
  return { suite: suite.name, base, baseSha256: identity.sha256, adapters: listed, rows, blockingFailures };
}

/** A file task's name is its file's base name (what adapters record). */
function resolveTaskName(task: string): string {
  return task.replace(/.*[\\/]/, "").replace(/\.\w+$/, "");
}
