/**
 * The budget policy: how long a run trains and its learning rate at each step.
 *
 *   steps or tokens (with or without a time cap)  →  "cosine": linear warm-up, then cosine decay
 *       to minLr over the steps the budget fixes in advance; a time cap only stops the run early.
 *   seconds alone  →  "wsd" (warm-up, stable, decay) on the fraction of the budget elapsed:
 *       linear warm-up over `warmup` steps, the peak LR until 1 − decayFraction of the time has
 *       passed, then a linear decay that reaches minLr when the time is up. The run stops when
 *       the elapsed training time reaches the budget.
 *
 * A time budget never guesses a step count: on a machine whose speed changes (other jobs, turbo,
 * thermal limits) the schedule still spans the whole budget and ends at minLr, where a cosine
 * fitted to the first steps' speed would stop early or be cut off before it decayed.
 *
 *     const s = new BudgetSchedule({ seconds: 600 }, undefined, { lr: 1e-3, minLr: 1e-4, warmup: 100 });
 *     s.kind;                 // "wsd"
 *     s.lr(step, elapsed);    // elapsed: training seconds when this step's gradients are ready
 *     s.finished(step, elapsed);
 */
import { cosineSchedule } from "../optim/adamw.js";

export type ScheduleKind = "cosine" | "wsd";

export interface Budget {
  steps?: number;
  /** In the objective's unit (tokens for language models): needs a fixed number of units per step. */
  tokens?: number;
  seconds?: number;
}

export interface ScheduleOptions {
  lr: number;
  minLr: number;
  warmup: number;
  /** Share of a time budget spent decaying to minLr (default 0.2: the last fifth). */
  decayFraction?: number;
}

/** LR of warm-up–stable–decay at `step`, with `fraction` of the budget elapsed (clamped to [0, 1]). */
export function wsdSchedule(step: number, fraction: number, { lr, minLr, warmup, decayFraction = 0.2 }: ScheduleOptions): number {
  const f = Math.min(1, Math.max(0, fraction));
  const stable = 1 - decayFraction;
  const timed = f <= stable ? lr : minLr + (lr - minLr) * Math.max(0, (1 - f) / decayFraction);
  // The lower of the warm-up ramp and the time curve: a budget shorter than the warm-up still ends at minLr.
  return step < warmup ? Math.min((lr * (step + 1)) / warmup, timed) : timed;
}

export class BudgetSchedule {
  readonly kind: ScheduleKind;
  /** Steps the budget allows (Infinity for a time budget). */
  totalSteps: number;

  constructor(readonly budget: Budget, unitsPerStep: number | undefined, private readonly o: ScheduleOptions) {
    if (budget.steps === undefined && budget.tokens === undefined && budget.seconds === undefined) throw new Error("give a budget: steps, tokens or seconds");
    for (const [name, v] of Object.entries(budget)) {
      if (v !== undefined && !(v >= 0)) throw new RangeError(`budget: ${name} must be >= 0, got ${v}`);
    }
    const d = o.decayFraction ?? 0.2;
    if (!(d > 0 && d <= 1)) throw new RangeError(`schedule: decayFraction must be in (0, 1], got ${d}`);
    if (budget.tokens !== undefined && unitsPerStep === undefined) {
      throw new RangeError("budget: a tokens budget needs an objective with a fixed number of units per batch; give steps or seconds");
    }
    this.kind = budget.steps === undefined && budget.tokens === undefined ? "wsd" : "cosine";
    this.totalSteps = Math.min(budget.steps ?? Infinity, budget.tokens !== undefined ? Math.ceil(budget.tokens / unitsPerStep!) : Infinity);
  }

  /** The learning rate of the step numbered `step` (0-based), updating the weights at `seconds` of training. */
  lr(step: number, seconds: number): number {
    if (this.kind === "wsd") return wsdSchedule(step, seconds / this.budget.seconds!, this.o);
    return cosineSchedule(step, { lr: this.o.lr, warmup: this.o.warmup, totalSteps: this.totalSteps, minLr: this.o.minLr });
  }

  /** Whether a run that has taken `step` steps in `seconds` of training has spent its budget. */
  finished(step: number, seconds: number): boolean {
    return step >= this.totalSteps || (this.budget.seconds !== undefined && seconds >= this.budget.seconds);
  }

  /** The share of the budget spent, for progress lines. */
  fraction(step: number, seconds: number): number {
    const byTime = this.budget.seconds !== undefined ? seconds / Math.max(this.budget.seconds, 1e-9) : 0;
    const bySteps = Number.isFinite(this.totalSteps) ? step / Math.max(this.totalSteps, 1) : 0;
    return Math.min(1, Math.max(byTime, bySteps));
  }
}
