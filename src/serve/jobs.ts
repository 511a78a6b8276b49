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
 *
 * Many replicas over one PostgreSQL registry share the queue: each replica's runner claims the
 * next job itself (registry jobs.claimNext: FOR UPDATE SKIP LOCKED, caps counted across
 * replicas), its worker heartbeats, and every runner sweeps for running jobs whose heartbeat
 * is older than `staleMs` and whose worker is not alive on its own machine: those are
 * re-queued (the attempt counted, training resuming from the job's checkpoint in the shared
 * data folder) or failed once out of attempts, so a dead replica's job runs again elsewhere
 * within staleMs + one sweep. A worker commits only while the job is still its own.
 */
import { type ChildProcess, fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { hostname, setPriority } from "node:os";
import { fileURLToPath } from "node:url";
import { defaultSteps } from "../adapt/finetune.js";
import { setfitPlan } from "../adapt/setfit.js";
import { type ArtifactStore, type JobEntry, type Registry, RegistryUnavailableError } from "../registry/index.js";
import { listCheckpoints } from "../train/checkpoint.js";
import { apiError } from "./errors.js";
import { processAlive } from "./pids.js";

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
  /** Uploads, adapters and checkpoints; workers open the same store by its location. */
  artifacts: ArtifactStore;
  /** Workers at once (default 1: the machine's cores go to training or to serving, not both many times over). */
  maxWorkers?: number;
  maxAttempts?: number;
  /** A running job whose heartbeat is older than this (ms) and whose worker is gone is re-queued (default 60 s; workers heartbeat every 2 s). */
  staleMs?: number;
  /** How often the runner looks for such jobs (ms, default 5 s). */
  sweepMs?: number;
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

/** Whether a worker process still runs (a zombie, killed but not yet reaped by its new parent, does not; workers are ours). */
const alive = (pid: number | null): boolean => pid !== null && processAlive(pid, { othersDead: true });

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
  private pumping = false;
  private pumpAgain = false;
  private ticking = false;
  private lastSweep = 0;
  private readonly maxWorkers: number;
  private readonly maxAttempts: number;
  private readonly script: string;
  /** This machine: where the pids of the workers this runner starts mean something. */
  readonly host = hostname();
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

  private async queuedJobs(): Promise<JobEntry[]> {
    return (await this.registry.jobs.jobsWithStatus("queued")).filter((j) => !this.slots.has(j.id));
  }

  /** Brings the registry's jobs back under management after a (re)start, then starts queued ones. */
  async recover(): Promise<void> {
    for (const job of await this.registry.jobs.jobsWithStatus("running")) {
      if (job.workerHost !== null && job.workerHost !== this.host) continue;  // another machine's: the sweep judges it by its heartbeat
      const fresh = job.heartbeat !== null && Date.now() - job.heartbeat < (this.opts.staleMs ?? 60_000);
      if (alive(job.workerPid) && fresh) {
        if (ownedElsewhere(job.workerPid!)) continue;  // the child of another live replica on this machine
        await this.registry.jobs.addEvent(job.id, "info", `Server restarted; adopted the running worker (pid ${job.workerPid})`);
        this.slots.set(job.id, { tenant: job.tenant, pid: job.workerPid, since: Date.now(), mark: 0, preempted: false });
        this.watch(job.id, job.workerPid!);
      } else if (job.workerPid !== null || !fresh) {
        await this.retryOrFail(job, "the server restarted and the job's worker is gone");
      }
    }
    this.ticker ??= setInterval(() => void this.tick(), 1000);
    this.ticker.unref();
    await this.pump();
  }

  /** Once a second: time-slicing, and now and then the sweep for jobs of dead workers or replicas. */
  private async tick(): Promise<void> {
    if (this.ticking || this.closed) return;
    this.ticking = true;
    try {
      await this.preemptIfWaiting();
      if (Date.now() - this.lastSweep >= (this.opts.sweepMs ?? 5000)) {
        this.lastSweep = Date.now();
        await this.sweep();
      }
    } catch (e) {
      if (!(e instanceof RegistryUnavailableError)) console.error(`job runner: ${(e as Error).message}`);
    } finally {
      this.ticking = false;
    }
  }

  /**
   * Re-queues (or fails, out of attempts) running jobs whose heartbeat is older than staleMs and
   * whose worker is not alive on this machine: a worker or a whole replica that died. Returns the
   * ids it moved.
   */
  async sweep(): Promise<string[]> {
    const staleMs = this.opts.staleMs ?? 60_000;
    const moved: string[] = [];
    await this.registry.tx(async () => {
      for (const job of await this.registry.jobs.staleRunning(Date.now() - staleMs)) {
        if (this.slots.has(job.id)) continue;  // ours: its exit (or watch) handles it
        if (job.workerHost === this.host && alive(job.workerPid)) continue;  // alive here, only slow
        const where = job.workerHost === null ? "" : ` on ${job.workerHost}`;
        await this.retryOrFail(job, `the job's worker${job.workerPid === null ? "" : ` (pid ${job.workerPid}${where})`} stopped heartbeating for ${Math.round((Date.now() - (job.heartbeat ?? 0)) / 1000)}s`);
        moved.push(job.id);
      }
    });
    if (moved.length > 0) await this.pump();
    return moved;
  }

  private async retryOrFail(job: JobEntry, why: string): Promise<void> {
    if (job.attempts < this.maxAttempts) {
      const step = listCheckpoints(this.opts.artifacts.scratch("checkpoints", job.id)).at(-1)?.step;
      const from = step === undefined ? "training restarts from step 0" : `training resumes from its checkpoint at step ${step}`;
      await this.registry.jobs.transition(job.id, ["running"], "queued", { message: `Resuming: ${why}; ${from} (attempt ${job.attempts + 1} of ${this.maxAttempts})`, level: "warn" });
    } else {
      await this.registry.jobs.transition(job.id, ["running"], "failed", { error: { code: "worker_lost", message: `${why}, after ${job.attempts} attempts` }, message: `Failed: ${why} after ${job.attempts} attempts`, level: "error" });
    }
  }

  /**
   * Starts workers for queued jobs while there is room: round-robin by tenant, each under its
   * cap (counted over every replica), each job claimed in the registry before its worker starts.
   */
  async pump(): Promise<void> {
    if (this.closed) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        while (!this.closed && this.slots.size < this.maxWorkers) {
          const job = await this.registry.jobs.claimNext(this.host,
            (queued, running) => pickJob(queued, running, this.lastServed, (t) => this.capOf(t)), (t) => this.capOf(t), new Set(this.slots.keys()));
          if (job === undefined) break;
          this.lastServed.set(job.tenant, ++this.served);
          await this.start(job);
        }
      } while (this.pumpAgain && !this.closed);
    } catch (e) {
      if (!(e instanceof RegistryUnavailableError)) throw e;  // the database is back soon: the next tick pumps again
    } finally {
      this.pumping = false;
    }
  }

  private async start(job: JobEntry): Promise<void> {
    this.slots.set(job.id, { tenant: job.tenant, pid: null, since: null, mark: 0, preempted: false });
    const mark = await this.registry.jobs.lastEventId(job.id);
    const child = fork(this.script, [this.opts.dbPath, job.id, this.opts.artifacts.location, this.host], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
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
    this.slots.set(job.id, { tenant: job.tenant, pid: child.pid ?? null, since: null, mark, preempted: false });
    child.on("exit", (code, signal) => void (async () => {
      this.children.delete(job.id);
      this.slots.delete(job.id);
      if (this.closed || !this.registry.db.open) return;
      try {
        const now = await this.registry.jobs.job(job.id);
        // Still running as this machine's claim: the worker died without committing (a cancel or a preemption is committed).
        if (now?.status === "running" && now.workerHost === this.host && (now.workerPid === null || now.workerPid === child.pid)) {
          await this.retryOrFail(now, `the worker exited (${signal ?? `code ${code}`})`);
        }
        await this.pump();
      } catch (e) {
        if (!(e instanceof RegistryUnavailableError)) console.error(`job runner: ${(e as Error).message}`);
      }
    })());
  }

  /**
   * Time-slicing: when every worker is busy and another tenant's job could start if one were
   * free, the job longest past its slice is asked to checkpoint and go back to the queue.
   */
  async preemptIfWaiting(): Promise<string | null> {
    if (this.closed || this.sliceSeconds <= 0) return null;
    const now = Date.now();
    for (const [id, s] of this.slots) if (s.since === null && (await this.registry.jobs.hasTrainedSince(id, s.mark))) s.since = now;
    if (this.slots.size < this.maxWorkers) {
      await this.pump();
      return null;
    }
    const queued = await this.queuedJobs();
    if (queued.length === 0) return null;
    const due = [...this.slots].filter(([, s]) => !s.preempted && s.pid !== null && s.since !== null && now - s.since >= this.sliceSeconds * 1000)
      .sort((a, b) => a[1].since! - b[1].since!);
    for (const [id, slot] of due) {
      // A job about to finish is left to finish: a worker's restart would cost more than it gives.
      const m = await this.registry.jobs.lastMetrics(id);
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
      await this.registry.jobs.addEvent(id, "info", `Time slice over (${Math.round((now - slot.since!) / 1000)}s of training) and another tenant's job is waiting: checkpointing to yield the worker`);
      return id;
    }
    return null;
  }

  /** Watches a worker that is not our child (it outlived the previous server). */
  private watch(jobId: string, pid: number): void {
    let busy = false;
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      void (async () => {
        const job = await this.registry.jobs.job(jobId);
        if (job === undefined || job.status !== "running" || !alive(pid)) {
          clearInterval(timer);
          this.adopted.delete(jobId);
          this.slots.delete(jobId);
          if (job?.status === "running" && job.workerPid === pid) await this.retryOrFail(job, `the adopted worker (pid ${pid}) exited`);
          await this.pump();
        }
      })().catch(() => {}).finally(() => { busy = false; });
    }, 500);
    timer.unref();
    this.adopted.set(jobId, timer);
  }

  /** Cancels a queued or running job; a running worker sees it at its next step, and is killed if it does not stop. */
  async cancel(jobId: string): Promise<boolean> {
    const ok = await this.registry.jobs.transition(jobId, ["queued", "running", "validating_files"], "cancelled", { message: "The job was cancelled" });
    const child = this.children.get(jobId);
    if (ok && child !== undefined) setTimeout(() => { if (child.exitCode === null) child.kill("SIGKILL"); }, 5000).unref();
    return ok;
  }

  running(): string[] {
    return [...this.children.keys(), ...this.adopted.keys()];
  }

  /** Stops managing jobs. With `killWorkers`, running workers are stopped and their jobs re-queued for the next start. */
  async close({ killWorkers = true } = {}): Promise<void> {
    this.closed = true;
    if (this.ticker !== null) clearInterval(this.ticker);
    for (const t of this.adopted.values()) clearInterval(t);
    if (!killWorkers) return;
    for (const [id, child] of this.children) {
      child.kill("SIGKILL");
      try {
        const job = await this.registry.jobs.job(id);
        if (job?.status === "running") await this.registry.jobs.transition(id, ["running"], "queued", { message: "Server shut down; the job is re-queued for the next start", level: "warn" });
      } catch {
        // the registry is unreachable: the sweep of another replica (or the next start) re-queues it
      }
    }
  }
}

/** Whether a live process other than this one and init is the parent of pid (another replica's worker). */
function ownedElsewhere(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    return ppid > 1 && ppid !== process.pid && alive(ppid);
  } catch {
    return false;
  }
}
