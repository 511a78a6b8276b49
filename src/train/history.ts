/**
 * What a run leaves beside its checkpoints: one JSON line per optimizer step (metrics.jsonl)
 * and the loss curve (loss.svg), plus the one loss smoothing every display uses.
 *
 * A metrics line names the objective's unit: a language model writes
 *   {"step":12,"tokens":3072,"loss":3.91,"lr":0.001,"seconds":1.2,"tokensPerSecond":2560,"schedule":"cosine","valLoss":3.95,"valPerplexity":51.9}
 * and CLIP writes images / imagesPerSecond and its logitScale instead.
 */
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import type { ScheduleKind } from "./schedule.js";
import { lineChartSvg } from "./plot.js";

/** What an objective counts: tokens for language models and classifiers, images for CLIP. */
export type Unit = "tokens" | "images" | "examples";

export interface StepRecord {
  step: number;
  /** Units consumed so far (the objective's unit), across resumes. */
  seen: number;
  /** Mean training loss of this step's batches. */
  loss: number;
  lr: number;
  /** Training time so far, across resumes. */
  seconds: number;
  /** Units per second since this run started (or resumed). */
  rate: number;
  schedule: ScheduleKind;
  /** Set when the step's matrix products ran below float32 ("bf16"). */
  precision?: string;
  /** The objective's own numbers for this step (CLIP: logitScale). */
  stats?: Record<string, number>;
  /** Set on steps that ran a validation. */
  valLoss?: number;
  /** More held-out numbers from that validation (valPerplexity, valBitsPerByte, zero-shot accuracy...). */
  scores?: Record<string, number>;
}

/** Exponential moving average of the training loss: the value after adding `loss` to `previous` (NaN at first). */
export function smoothLoss(previous: number, loss: number): number {
  return Number.isNaN(previous) ? loss : 0.95 * previous + 0.05 * loss;
}

function parse(line: string): Record<string, unknown> | null {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return null;  // empty, or torn by a crash
  }
}

export class MetricsLog {
  constructor(readonly path: string, readonly unit: Unit) {}

  /** Starts an empty log (a fresh run). */
  reset(): void {
    writeFileSync(this.path, "");
  }

  /** Drops lines after `step` (a resumed run repeats them). */
  truncate(step: number): void {
    if (!existsSync(this.path)) return;
    const kept = readFileSync(this.path, "utf8").split("\n").filter((l) => ((parse(l)?.step as number | undefined) ?? Infinity) <= step);
    writeFileSync(this.path, kept.map((l) => l + "\n").join(""));
  }

  append(r: StepRecord): void {
    const u = this.unit;
    const line: Record<string, unknown> = { step: r.step, [u]: r.seen, loss: r.loss, lr: r.lr, seconds: r.seconds, [`${u}PerSecond`]: r.rate, schedule: r.schedule, ...r.stats };
    if (r.valLoss !== undefined) line.valLoss = r.valLoss;
    if (r.precision !== undefined) line.precision = r.precision;
    Object.assign(line, r.scores);
    appendFileSync(this.path, JSON.stringify(line) + "\n");
  }

  private lines(): Record<string, unknown>[] {
    if (!existsSync(this.path)) return [];
    return readFileSync(this.path, "utf8").split("\n").map(parse).filter((l): l is Record<string, unknown> => l !== null);
  }

  /** The loss curve of the whole log: smoothed training loss and validation loss against units seen. */
  curveSvg({ title, yLabel }: { title: string; yLabel: string }): string {
    const lines = this.lines();
    let s = NaN;
    const train = lines.map((l) => [l[this.unit] as number, (s = smoothLoss(s, l.loss as number))] as [number, number]);
    const val = lines.filter((l) => l.valLoss !== undefined).map((l) => [l[this.unit] as number, l.valLoss as number] as [number, number]);
    return lineChartSvg(
      [{ name: "train loss (EMA)", color: "#1f77b4", points: train }, { name: "validation loss", color: "#d62728", points: val }],
      { title, xLabel: `${this.unit} seen`, yLabel },
    );
  }
}
