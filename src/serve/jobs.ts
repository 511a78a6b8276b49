/**
 * Runs fine-tuning jobs in worker processes (child_process.fork of worker.ts), a few at a
 * time, so training never shares the server's event loop. Jobs live in the registry, not in
 * memory: on start the runner adopts workers that outlived a previous server (their pid is
 * alive and their heartbeat fresh), re-queues jobs whose worker is gone (training resumes from
 * the job's last checkpoint; the attempt is counted) and fails those out of attempts. Nothing
 * is lost.
 *
 * Fairness between tenants:
 * - a tenant runs at most `maxPerTenant` jobs at once (default 1);
 * - a free worker takes the oldest queued job of the tenant served least recently (round-robin
 *   by tenant, oldest first within a tenant);
 * - a job is at most `maxJobExamples` training examples (steps × batch_size; per-tenant
 *   overrides), refused at creation with a 400 naming the hyperparameter;
 * - time-slicing: a job that has trained `sliceSeconds` (default 60) while another tenant's job
 *   waits for a worker is asked (SIGUSR2) to checkpoint and go back to the queue (unless it
 *   will be done within half a slice); it resumes from that checkpoint, exactly, when its
 *   tenant's turn comes again;
 * - workers run at a lower CPU priority (nice 10), so serving keeps the cores it needs.
 */
import { type ChildProcess, fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { setPriority } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { defaultSteps } from "../adapt/finetune.js";
import { setfitPlan } from "../adapt/setfit.js";
import type { JobEntry, Registry } from "../registry/index.js";
import { listCheckpoints } from "../train/checkpoint.js";
import { apiError } from "./errors.js";

export interface JobPolicy {
  /** Jobs of one tenant running at once (default 1). */
  maxPerTenant?: number;
  /** Seconds of training after which a job yields its worker to another tenant's waiting job (default 60; 0: never). */
  sliceSeconds?: number;
  /** Most training examples (steps × batch_size) one job may plan (default 1,000,000). */
  maxJobExamples?: number;
  /** Per-tenant overrides. */
  tenants?: Record<string, { maxPerTenant?: number; maxJobExamples?: number }>;
  /** Nice value of worker processes (default 10; 0 keeps the server's priority). */
  workerNice?: number;
}

/** The job policy's defaults (`plinth serve --jobs-per-tenant`, `--slice-seconds`, `--job-max-examples`, `--worker-nice`). */
export const DEFAULT_JOB_POLICY = { maxPerTenant: 1, sliceSeconds: 60, maxJobExamples: 1_000_000, workerNice: 10 } as const;

export interface JobRunnerOptions extends JobPolicy {
  dbPath: string;
  dataDir: string;
  /** Workers at once (default 1: the machine's cores go to training or to serving, not both many times over). */
  maxWorkers?: number;
  maxAttempts?: number;
  /** A running job whose heartbeat is older than this (ms) and whose worker is gone is re-queued. */
  staleMs?: number;
  workerScript?: string;
}

/**
 * The next job to start: among queued jobs (oldest first) whose tenant is under its cap of
 * running jobs, the oldest of the tenant served least recently (never served counts as oldest).
 */
export function pickJob(queued: readonly JobEntry[], running: ReadonlyMap<string, number>, lastServed: ReadonlyMap<string, number>, capOf: (tenant: string) => number): JobEntry | undefined {
  let best: JobEntry | undefined;
  let bestServed = Infinity;
  for (const j of queued) {
    if ((running.get(j.tenant) ?? 0) >= capOf(j.tenant)) continue;
    const served = lastServed.get(j.tenant) ?? -1;
    if (served < bestServed) {
      best = j;
      bestServed = served;
    }
  }
  return best;
}

/**
 * Training examples a job plans: steps × batch (with the trainers' defaults); for setfit, steps ×
 * the texts of a step's pairs; 0 for probe, prototype and knn (no steps).
 */
export function plannedExamples(method: string, hp: Record<string, number>, rows: number, generative: boolean): number {
  if (rows === 0 || (!generative && (method === "probe" || method === "prototype" || method === "knn"))) return 0;
  if (method === "setfit" && !generative) {
    const { steps, batchPairs } = setfitPlan(rows, { pairs: hp.pairs, batchPairs: hp.batch_pairs });
    return steps * Math.min(2 * batchPairs, rows);
  }
  if (generative) {
    const batch = hp.batch_size ?? 8;
    return (hp.steps ?? Math.max(1, Math.ceil(((hp.n_epochs ?? 3) * rows) / batch))) * batch;
  }
  const batch = Math.min(hp.batch_size ?? 16, rows);
  return (hp.steps ?? defaultSteps(rows, { epochs: hp.n_epochs, batchSize: batch })) * batch;
}

/** Whether a worker process still runs (a zombie, killed but not yet reaped by its new parent, does not). */
const alive = (pid: number | null): boolean => {
  if (pid === null) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;  // ESRCH: no such process (EPERM would mean alive but not ours; workers are ours)
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return true;  // no /proc (not Linux): signal 0 succeeded, so it exists
  }
};

export class JobRunner {
  private readonly children = new Map<string, ChildProcess>();
  private readonly adopted = new Map<string, NodeJS.Timeout>();
  /**
   * Jobs with a worker (ours or adopted): tenant, pid, when its slice began (its first training
   * step in this attempt, so a worker's start-up and resume are not charged to it; null until
   * then), the event to look for that step after, and whether it was asked to yield.
   */
  private readonly slots = new Map<string, { tenant: string; pid: number | null; since: number | null; mark: number; preempted: boolean }>();
  /** Tenant -> when a job of theirs last started (a counter): round-robin order. */
  private readonly lastServed = new Map<string, number>();
  private served = 0;
  private ticker: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly maxWorkers: number;
  private readonly maxAttempts: number;
  private readonly script: string;
  readonly sliceSeconds: number;

  constructor(private readonly registry: Registry, private readonly opts: JobRunnerOptions) {
    this.maxWorkers = opts.maxWorkers ?? 1;
    this.maxAttempts = opts.maxAttempts ?? 3;
    this.script = opts.workerScript ?? fileURLToPath(new URL("./worker.js", import.meta.url));
    this.sliceSeconds = opts.sliceSeconds ?? DEFAULT_JOB_POLICY.sliceSeconds;
  }

  /** Jobs a tenant may run at once. */
  capOf(tenant: string): number {
    return this.opts.tenants?.[tenant]?.maxPerTenant ?? this.opts.maxPerTenant ?? DEFAULT_JOB_POLICY.maxPerTenant;
  }

  /** Training examples one job of the tenant may plan. */
  maxExamplesOf(tenant: string): number {
    return this.opts.tenants?.[tenant]?.maxJobExamples ?? this.opts.maxJobExamples ?? DEFAULT_JOB_POLICY.maxJobExamples;
  }

  /** Refuses (400, naming the hyperparameter) a job that plans more training than its tenant may run in one job. */
  checkJobSize(tenant: string, method: string, hp: Record<string, number>, file: { rows: number; labels: string[] }): void {
    const planned = plannedExamples(method, hp, file.rows, file.labels.length === 0);
    const max = this.maxExamplesOf(tenant);
    if (planned <= max) return;
    const param = method === "setfit" ? (hp.pairs !== undefined ? "pairs" : "batch_pairs")
      : hp.steps !== undefined ? "steps" : hp.n_epochs !== undefined ? "n_epochs" : "batch_size";
    const fmt = (n: number) => n.toLocaleString("en-US");
    const [what, lower] = method === "setfit" ? ["steps × the texts of a step's pairs", "pairs or batch_pairs"] : ["steps × batch_size", "steps, n_epochs or batch_size"];
    throw apiError("invalid_value",
      `Invalid value for 'hyperparameters.${param}': this job plans ${fmt(planned)} training examples (${what}); a job may train on at most ${fmt(max)}. Lower ${lower}, or split the training into several jobs.`,
      `hyperparameters.${param}`);
  }

  private runningByTenant(): Map<string, number> {
    const out = new Map<string, number>();
    for (const s of this.slots.values()) out.set(s.tenant, (out.get(s.tenant) ?? 0) + 1);
    return out;
  }

  private queuedJobs(): JobEntry[] {
    return this.registry.jobs.jobsWithStatus("queued").filter((j) => !this.slots.has(j.id));
  }

  /** Brings the registry's jobs back under management after a (re)start, then starts queued ones. */
  recover(): void {
    for (const job of this.registry.jobs.jobsWithStatus("running")) {
      if (alive(job.workerPid) && job.heartbeat !== null && Date.now() - job.heartbeat < (this.opts.staleMs ?? 60_000)) {
        this.registry.jobs.addEvent(job.id, "info", `Server restarted; adopted the running worker (pid ${job.workerPid})`);
        this.slots.set(job.id, { tenant: job.tenant, pid: job.workerPid, since: Date.now(), mark: 0, preempted: false });
        this.watch(job.id, job.workerPid!);
      } else {
        this.retryOrFail(job, "the server restarted and the job's worker is gone");
      }
    }
    this.ticker ??= setInterval(() => this.preemptIfWaiting(), 1000);
    this.ticker.unref();
    this.pump();
  }

  private retryOrFail(job: JobEntry, why: string): void {
    if (job.attempts < this.maxAttempts) {
      const step = listCheckpoints(join(this.opts.dataDir, "checkpoints", job.id)).at(-1)?.step;
      const from = step === undefined ? "training restarts from step 0" : `training resumes from its checkpoint at step ${step}`;
      this.registry.jobs.transition(job.id, ["running"], "queued", { message: `Resuming: ${why}; ${from} (attempt ${job.attempts + 1} of ${this.maxAttempts})`, level: "warn" });
    } else {
      this.registry.jobs.transition(job.id, ["running"], "failed", { error: { code: "worker_lost", message: `${why}, after ${job.attempts} attempts` }, message: `Failed: ${why} after ${job.attempts} attempts`, level: "error" });
    }
  }

  /** Starts workers for queued jobs while there is room: round-robin by tenant, each under its cap. */
  pump(): void {
    if (this.closed) return;
    while (this.slots.size < this.maxWorkers) {
      const job = pickJob(this.queuedJobs(), this.runningByTenant(), this.lastServed, (t) => this.capOf(t));
      if (job === undefined) return;
      this.lastServed.set(job.tenant, ++this.served);
      this.start(job);
    }
  }

  private start(job: JobEntry): void {
    const child = fork(this.script, [this.opts.dbPath, job.id, this.opts.dataDir], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    // At once, before the child starts its threads (which inherit it): training yields the CPU to serving.
    const nice = this.opts.workerNice ?? DEFAULT_JOB_POLICY.workerNice;
    if (nice !== 0 && child.pid !== undefined) {
      try {
        setPriority(child.pid, nice);
      } catch {
        // not permitted here (some containers): the worker runs at the server's priority
      }
    }
    this.children.set(job.id, child);
    this.slots.set(job.id, { tenant: job.tenant, pid: child.pid ?? null, since: null, mark: this.registry.jobs.lastEventId(job.id), preempted: false });
    child.on("exit", (code, signal) => {
      this.children.delete(job.id);
      this.slots.delete(job.id);
      const now = this.registry.db.open ? this.registry.jobs.job(job.id) : undefined;
      if (now?.status === "running" && !this.closed) this.retryOrFail(now, `the worker exited (${signal ?? `code ${code}`})`);
      this.pump();
    });
  }

  /**
   * Time-slicing: when every worker is busy and another tenant's job could start if one were
   * free, the job longest past its slice is asked to checkpoint and go back to the queue.
   */
  preemptIfWaiting(): string | null {
    if (this.closed || this.sliceSeconds <= 0) return null;
    const now = Date.now();
    for (const [id, s] of this.slots) if (s.since === null && this.registry.jobs.hasTrainedSince(id, s.mark)) s.since = now;
    if (this.slots.size < this.maxWorkers) {
      this.pump();
      return null;
    }
    const queued = this.queuedJobs();
    if (queued.length === 0) return null;
    const due = [...this.slots].filter(([, s]) => !s.preempted && s.pid !== null && s.since !== null && now - s.since >= this.sliceSeconds * 1000)
      .sort((a, b) => a[1].since! - b[1].since!);
    for (const [id, slot] of due) {
      // A job about to finish is left to finish: a worker's restart would cost more than it gives.
      const m = this.registry.jobs.lastMetrics(id);
      if (m !== null && m.step > 0 && m.total_steps > m.step && (m.elapsed_seconds * (m.total_steps - m.step)) / m.step < this.sliceSeconds / 2) continue;
      const running = this.runningByTenant();
      running.set(slot.tenant, running.get(slot.tenant)! - 1);
      const next = pickJob(queued, running, this.lastServed, (t) => this.capOf(t));
      if (next === undefined || next.tenant === slot.tenant) continue;
      try {
        process.kill(slot.pid!, "SIGUSR2");
      } catch {
        continue;  // the worker is gone; its exit re-queues the job
      }
      slot.preempted = true;
      this.registry.jobs.addEvent(id, "info", `Time slice over (${Math.round((now - slot.since!) / 1000)}s of training) and another tenant's job is waiting: checkpointing to yield the worker`);
      return id;
    }
    return null;
  }

  /** Watches a worker that is not our child (it outlived the previous server). */
  private watch(jobId: string, pid: number): void {
    const timer = setInterval(() => {
      const job = this.registry.jobs.job(jobId);
      if (job === undefined || job.status !== "running" || !alive(pid)) {
        clearInterval(timer);
        this.adopted.delete(jobId);
        this.slots.delete(jobId);
        if (job?.status === "running") this.retryOrFail(job, `the adopted worker (pid ${pid}) exited`);
        this.pump();
      }
    }, 500);
    timer.unref();
    this.adopted.set(jobId, timer);
  }

  /** Cancels a queued or running job; a running worker sees it at its next step, and is killed if it does not stop. */
  cancel(jobId: string): boolean {
    const ok = this.registry.jobs.transition(jobId, ["queued", "running", "validating_files"], "cancelled", { message: "The job was cancelled" });
    const child = this.children.get(jobId);
    if (ok && child !== undefined) setTimeout(() => { if (child.exitCode === null) child.kill("SIGKILL"); }, 5000).unref();
    return ok;
  }

  running(): string[] {
    return [...this.children.keys(), ...this.adopted.keys()];
  }

  /** Stops managing jobs. With `killWorkers`, running workers are stopped and their jobs re-queued for the next start. */
  close({ killWorkers = true } = {}): void {
    this.closed = true;
    if (this.ticker !== null) clearInterval(this.ticker);
    for (const t of this.adopted.values()) clearInterval(t);
    if (!killWorkers) return;
    for (const [id, child] of this.children) {
      child.kill("SIGKILL");
      const job = this.registry.jobs.job(id);
      if (job?.status === "running") this.registry.jobs.transition(id, ["running"], "queued", { message: "Server shut down; the job is re-queued for the next start", level: "warn" });
    }
  }
}
