/**
 * Runs fine-tuning jobs in worker processes (child_process.fork of worker.ts), a few at a
 * time, so training never shares the server's event loop. Jobs live in the registry, not in
 * memory: on start the runner adopts workers that outlived a previous server (their pid is
 * alive and their heartbeat fresh), re-queues jobs whose worker is gone (training restarts
 * from step 0; the attempt is counted) and fails those out of attempts. Nothing is lost.
 */
import { type ChildProcess, fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { JobEntry, Registry } from "../registry/index.js";

export interface JobRunnerOptions {
  dbPath: string;
  dataDir: string;
  /** Workers at once (default 1: the machine's cores go to training or to serving, not both many times over). */
  maxWorkers?: number;
  maxAttempts?: number;
  /** A running job whose heartbeat is older than this (ms) and whose worker is gone is re-queued. */
  staleMs?: number;
  workerScript?: string;
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
  private closed = false;
  private readonly maxWorkers: number;
  private readonly maxAttempts: number;
  private readonly script: string;

  constructor(private readonly registry: Registry, private readonly opts: JobRunnerOptions) {
    this.maxWorkers = opts.maxWorkers ?? 1;
    this.maxAttempts = opts.maxAttempts ?? 3;
    this.script = opts.workerScript ?? fileURLToPath(new URL("./worker.js", import.meta.url));
  }

  /** Brings the registry's jobs back under management after a (re)start, then starts queued ones. */
  recover(): void {
    for (const job of this.registry.jobs.jobsWithStatus("running")) {
      if (alive(job.workerPid) && job.heartbeat !== null && Date.now() - job.heartbeat < (this.opts.staleMs ?? 60_000)) {
        this.registry.jobs.addEvent(job.id, "info", `Server restarted; adopted the running worker (pid ${job.workerPid})`);
        this.watch(job.id, job.workerPid!);
      } else {
        this.retryOrFail(job, "the server restarted and the job's worker is gone");
      }
    }
    this.pump();
  }

  private retryOrFail(job: JobEntry, why: string): void {
    if (job.attempts < this.maxAttempts) {
      this.registry.jobs.transition(job.id, ["running"], "queued", { message: `Resuming: ${why}; training restarts from step 0 (attempt ${job.attempts + 1} of ${this.maxAttempts})`, level: "warn" });
    } else {
      this.registry.jobs.transition(job.id, ["running"], "failed", { error: { code: "worker_lost", message: `${why}, after ${job.attempts} attempts` }, message: `Failed: ${why} after ${job.attempts} attempts`, level: "error" });
    }
  }

  /** Starts workers for queued jobs while there is room. */
  pump(): void {
    if (this.closed) return;
    for (const job of this.registry.jobs.jobsWithStatus("queued")) {
      if (this.children.size + this.adopted.size >= this.maxWorkers) return;
      if (this.children.has(job.id)) continue;
      const child = fork(this.script, [this.opts.dbPath, job.id, this.opts.dataDir], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
      this.children.set(job.id, child);
      child.on("exit", (code, signal) => {
        this.children.delete(job.id);
        const now = this.registry.db.open ? this.registry.jobs.job(job.id) : undefined;
        if (now?.status === "running" && !this.closed) this.retryOrFail(now, `the worker exited (${signal ?? `code ${code}`})`);
        this.pump();
      });
    }
  }

  /** Watches a worker that is not our child (it outlived the previous server). */
  private watch(jobId: string, pid: number): void {
    const timer = setInterval(() => {
      const job = this.registry.jobs.job(jobId);
      if (job === undefined || job.status !== "running" || !alive(pid)) {
        clearInterval(timer);
        this.adopted.delete(jobId);
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
    for (const t of this.adopted.values()) clearInterval(t);
    if (!killWorkers) return;
    for (const [id, child] of this.children) {
      child.kill("SIGKILL");
      const job = this.registry.jobs.job(id);
      if (job?.status === "running") this.registry.jobs.transition(id, ["running"], "queued", { message: "Server shut down; the job is re-queued for the next start", level: "warn" });
    }
  }
}
