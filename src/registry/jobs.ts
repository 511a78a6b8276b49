/**
 * Datasets (uploaded files) and fine-tuning jobs with their events and checkpoints. Every
 * state change is one transaction, so a killed server or worker leaves the last committed
 * state: a job is queued, running (with its worker's pid and heartbeat), or finished.
 */
import { randomBytes } from "node:crypto";
import { now } from "./db.js";
import type { Store } from "./store.js";

export type JobStatus = "validating_files" | "queued" | "running" | "succeeded" | "failed" | "cancelled";
export const TERMINAL: ReadonlySet<JobStatus> = new Set(["succeeded", "failed", "cancelled"]);

export interface FileEntry {
  id: string; tenant: string; filename: string; purpose: string; bytes: number; path: string; rows: number; labels: string[]; sha256: string; created: number;
}

export interface JobEntry {
  id: string;
  tenant: string;
  keyId: string;
  model: string;
  trainingFile: string;
  /** A second uploaded file of the tenant's, held out for validation (generative jobs), or null. */
  validationFile: string | null;
  method: string;
  hyperparameters: Record<string, number>;
  suffix: string | null;
  seed: number;
  /** A probe suite (probes/<name>.json) the trained adapter is audited with, or null. */
  auditSuite: string | null;
  status: JobStatus;
  attempts: number;
  workerPid: number | null;
  /** The machine (host name) whose replica claimed the job: where workerPid means something. */
  workerHost: string | null;
  heartbeat: number | null;
  fineTunedModel: string | null;
  error: { code: string; message: string } | null;
  trainedTokens: number | null;
  created: number;
  started: number | null;
  finished: number | null;
}

export interface JobEvent {
  id: number; jobId: string; created: number; level: "info" | "warn" | "error"; type: "message" | "metrics"; message: string; data: Record<string, number> | null;
}

export interface Checkpoint { id: string; jobId: string; step: number; metrics: Record<string, number>; model: string; created: number }

interface JobRow {
  id: string; tenant: string; key_id: string; model: string; training_file: string; validation_file: string | null; method: string; hyperparameters: string; suffix: string | null;
  seed: number; audit_suite: string | null; status: JobStatus; attempts: number; worker_pid: number | null; worker_host: string | null; heartbeat: number | null; fine_tuned_model: string | null;
  error: string | null; trained_tokens: number | null; created: number; started: number | null; finished: number | null;
}
interface FileRow { id: string; tenant: string; filename: string; purpose: string; bytes: number; path: string; rows: number; labels: string; sha256: string; created: number }
interface EventRow { id: number; job_id: string; created: number; level: JobEvent["level"]; type: JobEvent["type"]; message: string; data: string | null }
interface CheckpointRow { id: string; job_id: string; step: number; metrics: string; model: string; created: number }

const toJob = (r: JobRow): JobEntry => ({
  id: r.id, tenant: r.tenant, keyId: r.key_id, model: r.model, trainingFile: r.training_file, validationFile: r.validation_file ?? null, method: r.method,
  hyperparameters: JSON.parse(r.hyperparameters) as Record<string, number>, suffix: r.suffix, seed: r.seed, auditSuite: r.audit_suite, status: r.status,
  attempts: r.attempts, workerPid: r.worker_pid, workerHost: r.worker_host ?? null, heartbeat: r.heartbeat, fineTunedModel: r.fine_tuned_model,
  error: r.error === null ? null : (JSON.parse(r.error) as JobEntry["error"]), trainedTokens: r.trained_tokens,
  created: r.created, started: r.started, finished: r.finished,
});
const toFile = (r: FileRow): FileEntry => ({ ...r, labels: JSON.parse(r.labels) as string[] });
const toEvent = (r: EventRow): JobEvent => ({
  id: r.id, jobId: r.job_id, created: r.created, level: r.level, type: r.type, message: r.message,
  data: r.data === null ? null : (JSON.parse(r.data) as Record<string, number>),
});
const toCheckpoint = (r: CheckpointRow): Checkpoint => ({ id: r.id, jobId: r.job_id, step: r.step, metrics: JSON.parse(r.metrics) as Record<string, number>, model: r.model, created: r.created });

/** Cursor pagination in OpenAI's style: items after `after` (an id), newest first. */
export interface Page { after?: string; limit?: number }

/** A pagination cursor that names nothing on this list (the server answers 400, param "after"). */
export class CursorError extends Error {
  constructor(readonly param: string, readonly value: string, expected: string) {
    super(`Unknown cursor ${param}=${JSON.stringify(value)}: expected ${expected}.`);
    this.name = "CursorError";
  }
}

/** The advisory lock job claims take turns on, on PostgreSQL ("plinth-jobs" folded to 48 bits). */
const CLAIM_LOCK = 0x706a6f6273;

export class JobStore {
  constructor(private readonly db: Store) {}

  async addFile(f: Omit<FileEntry, "id" | "created">): Promise<FileEntry> {
    const id = `file-${randomBytes(12).toString("hex")}`;
    await this.db.run("INSERT INTO files (id, tenant, filename, purpose, bytes, path, rows, labels, sha256, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      [id, f.tenant, f.filename, f.purpose, f.bytes, f.path, f.rows, JSON.stringify(f.labels), f.sha256, now()]);
    return (await this.file(id))!;
  }

  async file(id: string): Promise<FileEntry | undefined> {
    const r = await this.db.get<FileRow>("SELECT * FROM files WHERE id = ?", [id]);
    return r === undefined ? undefined : toFile(r);
  }

  async files(tenant: string): Promise<FileEntry[]> {
    return (await this.db.all<FileRow>("SELECT * FROM files WHERE tenant = ? ORDER BY created DESC, id DESC", [tenant])).map(toFile);
  }

  /**
   * Deletes a file the tenant no longer needs; refuses one that a job trained (or will train) on.
   * `shared`: another file record has the same bytes (the same content-addressed blob), so the blob stays.
   */
  async deleteFile(id: string): Promise<{ usedBy: string | null; shared: boolean }> {
    return this.db.tx(async () => {
      const used = await this.db.get<{ id: string }>("SELECT id FROM jobs WHERE training_file = ? OR validation_file = ? LIMIT 1", [id, id]);
      if (used !== undefined) return { usedBy: used.id, shared: true };
      const f = await this.db.get<{ sha256: string }>("SELECT sha256 FROM files WHERE id = ?", [id]);
      await this.db.run("DELETE FROM files WHERE id = ?", [id]);
      const other = f === undefined ? undefined : await this.db.get<{ id: string }>("SELECT id FROM files WHERE sha256 = ? LIMIT 1", [f.sha256]);
      return { usedBy: null, shared: other !== undefined };
    });
  }

  async createJob(j: Pick<JobEntry, "tenant" | "keyId" | "model" | "trainingFile" | "method" | "hyperparameters" | "suffix" | "seed"> & { auditSuite?: string | null; validationFile?: string | null }): Promise<JobEntry> {
    const id = `ftjob-${randomBytes(12).toString("hex")}`;
    await this.db.tx(async () => {
      await this.db.run(`INSERT INTO jobs (id, tenant, key_id, model, training_file, validation_file, method, hyperparameters, suffix, seed, audit_suite, status, created)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?)`,
        [id, j.tenant, j.keyId, j.model, j.trainingFile, j.validationFile ?? null, j.method, JSON.stringify(j.hyperparameters), j.suffix, j.seed, j.auditSuite ?? null, now()]);
      await this.addEvent(id, "info", `Created fine-tuning job (${j.method} on ${j.model})`);
    });
    return (await this.job(id))!;
  }

  async job(id: string): Promise<JobEntry | undefined> {
    const r = await this.db.get<JobRow>("SELECT * FROM jobs WHERE id = ?", [id]);
    return r === undefined ? undefined : toJob(r);
  }

  /** The job, its row locked until the caller's transaction ends (PostgreSQL; SQLite's write lock already covers it). */
  async jobForUpdate(id: string): Promise<JobEntry | undefined> {
    const r = await this.db.get<JobRow>(`SELECT * FROM jobs WHERE id = ?${this.db.dialect.forUpdate}`, [id]);
    return r === undefined ? undefined : toJob(r);
  }

  /** A tenant's jobs, newest first, `limit` after the job `after` (a cursor from an earlier page). */
  async jobs(tenant: string, { after, limit = 20 }: Page = {}): Promise<{ data: JobEntry[]; hasMore: boolean }> {
    let rows: JobRow[];
    if (after === undefined) {
      rows = await this.db.all<JobRow>("SELECT * FROM jobs WHERE tenant = ? ORDER BY seq DESC LIMIT ?", [tenant, limit + 1]);
    } else {
      const cursor = await this.db.get<{ seq: number }>("SELECT seq FROM jobs WHERE id = ? AND tenant = ?", [after, tenant]);
      if (cursor === undefined) throw new CursorError("after", after, "a fine-tuning job id of yours from an earlier page");
      rows = await this.db.all<JobRow>("SELECT * FROM jobs WHERE tenant = ? AND seq < ? ORDER BY seq DESC LIMIT ?", [tenant, cursor.seq, limit + 1]);
    }
    return { data: rows.slice(0, limit).map(toJob), hasMore: rows.length > limit };
  }

  async jobsWithStatus(...statuses: JobStatus[]): Promise<JobEntry[]> {
    return (await this.db.all<JobRow>(`SELECT * FROM jobs WHERE status IN (${statuses.map(() => "?").join(",")}) ORDER BY seq`, statuses)).map(toJob);
  }

  /**
   * Claims the next queued job for a replica on machine `host`, fairly: `choose` picks among the
   * queued jobs (oldest first) given the jobs running per tenant on every replica, and a tenant
   * at its cap (`capOf`) is passed over. On PostgreSQL claims take turns on one advisory lock
   * (so the caps are exact across replicas) and the chosen row is locked `FOR UPDATE SKIP LOCKED`:
   * a job another transaction is changing (a cancel, a sweep) is passed over, never waited for.
   * SQLite's write lock serializes claims. The job comes back running, its attempt counted, with no worker pid yet (the worker
   * attaches); `exclude`: jobs this replica still holds (a preempted worker not yet gone).
   */
  async claimNext(host: string, choose: (queued: JobEntry[], running: Map<string, number>) => JobEntry | undefined,
    capOf: (tenant: string) => number, exclude: ReadonlySet<string> = new Set()): Promise<JobEntry | undefined> {
    return this.db.tx(async () => {
      // Claims take turns across replicas (one is a few milliseconds, once per job start), so the
      // running counts below are exact and the caps hold; SQLite's write lock does the same.
      if (this.db.dialect.name === "postgres") await this.db.get("SELECT pg_advisory_xact_lock(?) AS locked", [CLAIM_LOCK]);
      let queued = (await this.db.all<JobRow>("SELECT * FROM jobs WHERE status = 'queued' ORDER BY seq")).map(toJob).filter((j) => !exclude.has(j.id));
      const running = new Map((await this.db.all<{ tenant: string; n: number }>("SELECT tenant, COUNT(*) AS n FROM jobs WHERE status = 'running' GROUP BY tenant")).map((r) => [r.tenant, r.n]));
      for (;;) {
        const job = choose(queued, running);
        if (job === undefined) return undefined;
        // The chosen row, locked; one another replica is claiming right now is skipped, not waited for.
        const mine = await this.db.get(`SELECT id FROM jobs WHERE id = ? AND status = 'queued'${this.db.dialect.forUpdateSkipLocked}`, [job.id]);
        if (mine === undefined) {
          queued = queued.filter((j) => j.id !== job.id);
          continue;
        }
        if ((running.get(job.tenant) ?? 0) >= capOf(job.tenant)) {
          queued = queued.filter((j) => j.tenant !== job.tenant);
          continue;
        }
        const changed = await this.db.run(`UPDATE jobs SET status = 'running', worker_host = ?, worker_pid = NULL, heartbeat = ?, attempts = attempts + 1,
          started = COALESCE(started, ?) WHERE id = ? AND status = 'queued'`, [host, Date.now(), now(), job.id]);
        if (changed !== 1) {
          queued = queued.filter((j) => j.id !== job.id);
          continue;
        }
        return (await this.job(job.id))!;
      }
    });
  }

  /**
   * The worker process of a claimed job takes it up: false if the job is no longer running for
   * that machine (cancelled meanwhile, or re-queued and claimed elsewhere).
   */
  async attach(id: string, pid: number, host: string): Promise<boolean> {
    return this.db.tx(async () => {
      const changed = await this.db.run("UPDATE jobs SET worker_pid = ?, heartbeat = ? WHERE id = ? AND status = 'running' AND worker_host = ? AND worker_pid IS NULL",
        [pid, Date.now(), id, host]);
      if (changed === 1) await this.addEvent(id, "info", `Fine-tuning job started (worker pid ${pid} on ${host})`);
      return changed === 1;
    });
  }

  /** Claims one queued job by id for a worker that runs it itself (no runner); false if it is no longer queued. */
  async claim(id: string, pid: number, host: string): Promise<boolean> {
    return this.db.tx(async () => {
      const changed = await this.db.run("UPDATE jobs SET status = 'running', worker_pid = ?, worker_host = ?, heartbeat = ?, attempts = attempts + 1, started = COALESCE(started, ?) WHERE id = ? AND status = 'queued'",
        [pid, host, Date.now(), now(), id]);
      if (changed === 1) await this.addEvent(id, "info", `Fine-tuning job started (worker pid ${pid} on ${host})`);
      return changed === 1;
    });
  }

  /** Running jobs whose heartbeat is older than `before` (ms), locked for the caller's transaction (skipping ones another replica holds). */
  async staleRunning(before: number): Promise<JobEntry[]> {
    return (await this.db.all<JobRow>(`SELECT * FROM jobs WHERE status = 'running' AND heartbeat < ? ORDER BY seq${this.db.dialect.forUpdateSkipLocked}`, [before])).map(toJob);
  }

  /**
   * A running job that gave its worker back (time-sliced: checkpointed so other tenants' jobs can
   * run) goes back to the queue. Being preempted is not a failed attempt, so it does not count
   * against the job's attempts.
   */
  async requeuePreempted(id: string, message: string): Promise<boolean> {
    return this.db.tx(async () => {
      const changed = await this.db.run("UPDATE jobs SET status = 'queued', worker_pid = NULL, worker_host = NULL, attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END WHERE id = ? AND status = 'running'", [id]);
      if (changed === 1) await this.addEvent(id, "info", message);
      return changed === 1;
    });
  }

  /** The id of the job's newest event (0 when it has none): a mark to ask hasTrainedSince about. */
  async lastEventId(jobId: string): Promise<number> {
    return (await this.db.get<{ id: number | null }>("SELECT MAX(id) AS id FROM job_events WHERE job_id = ?", [jobId]))?.id ?? 0;
  }

  /** Whether the job has reported a training step (a metrics event) after the event `afterId`. */
  async hasTrainedSince(jobId: string, afterId: number): Promise<boolean> {
    return (await this.db.get("SELECT 1 AS one FROM job_events WHERE job_id = ? AND id > ? AND type = 'metrics' LIMIT 1", [jobId, afterId])) !== undefined;
  }

  /** The data of the job's newest metrics event (step, total_steps, elapsed_seconds, ...), if any. */
  async lastMetrics(jobId: string): Promise<Record<string, number> | null> {
    const r = await this.db.get<{ data: string }>("SELECT data FROM job_events WHERE job_id = ? AND type = 'metrics' ORDER BY id DESC LIMIT 1", [jobId]);
    return r === undefined ? null : (JSON.parse(r.data) as Record<string, number>);
  }

  /** The worker (pid on host) is alive: false when the job is no longer its own (cancelled, or re-queued and claimed elsewhere). */
  async heartbeat(id: string, pid?: number, host?: string): Promise<boolean> {
    if (pid === undefined) return (await this.db.run("UPDATE jobs SET heartbeat = ? WHERE id = ? AND status = 'running'", [Date.now(), id])) === 1;
    return (await this.db.run("UPDATE jobs SET heartbeat = ? WHERE id = ? AND status = 'running' AND worker_pid = ? AND worker_host = ?", [Date.now(), id, pid, host ?? null])) === 1;
  }

  /** Moves a job to a new status if it is in one of `from`; returns whether it moved. */
  async transition(id: string, from: JobStatus[], to: JobStatus, fields: { error?: JobEntry["error"]; fineTunedModel?: string; trainedTokens?: number; message?: string; level?: JobEvent["level"] } = {}): Promise<boolean> {
    return this.db.tx(async () => {
      const terminal = TERMINAL.has(to);
      const changed = await this.db.run(`UPDATE jobs SET status = ?, error = COALESCE(?, error), fine_tuned_model = COALESCE(?, fine_tuned_model),
          trained_tokens = COALESCE(?, trained_tokens), finished = CASE WHEN ? = 1 THEN ? ELSE finished END,
          worker_pid = CASE WHEN ? = 1 THEN NULL ELSE worker_pid END, worker_host = CASE WHEN ? = 1 THEN NULL ELSE worker_host END
        WHERE id = ? AND status IN (${from.map(() => "?").join(",")})`,
        [to, fields.error === undefined ? null : JSON.stringify(fields.error), fields.fineTunedModel ?? null, fields.trainedTokens ?? null,
          terminal ? 1 : 0, now(), terminal || to === "queued" ? 1 : 0, to === "queued" ? 1 : 0, id, ...from]);
      if (changed === 1 && fields.message !== undefined) await this.addEvent(id, fields.level ?? "info", fields.message);
      return changed === 1;
    });
  }

  async addEvent(jobId: string, level: JobEvent["level"], message: string, data: Record<string, number> | null = null): Promise<void> {
    await this.db.run("INSERT INTO job_events (job_id, created, level, type, message, data) VALUES (?, ?, ?, ?, ?, ?)",
      [jobId, now(), level, data === null ? "message" : "metrics", message, data === null ? null : JSON.stringify(data)]);
  }

  /** A job's events in id order (newest first by default), `limit` after the event `after` ("ftevent-<id>"). */
  async events(jobId: string, { after, limit = 1000, order = "desc" }: Page & { order?: "asc" | "desc" } = {}): Promise<JobEvent[]> {
    const dir = order === "asc" ? "ASC" : "DESC";
    if (after === undefined) {
      return (await this.db.all<EventRow>(`SELECT * FROM job_events WHERE job_id = ? ORDER BY id ${dir} LIMIT ?`, [jobId, limit])).map(toEvent);
    }
    const id = /^ftevent-(\d+)$/.exec(after)?.[1];
    const cursor = id === undefined ? undefined : await this.db.get<{ id: number }>("SELECT id FROM job_events WHERE id = ? AND job_id = ?", [Number(id), jobId]);
    if (cursor === undefined) throw new CursorError("after", after, `an event id of job ${jobId} ("ftevent-<n>") from an earlier page`);
    return (await this.db.all<EventRow>(`SELECT * FROM job_events WHERE job_id = ? AND id ${order === "asc" ? ">" : "<"} ? ORDER BY id ${dir} LIMIT ?`,
      [jobId, cursor.id, limit])).map(toEvent);
  }

  async addCheckpoint(jobId: string, step: number, metrics: Record<string, number>, model: string): Promise<Checkpoint> {
    const id = `ftckpt-${randomBytes(12).toString("hex")}`;
    await this.db.run("INSERT INTO checkpoints (id, job_id, step, metrics, model, created) VALUES (?, ?, ?, ?, ?, ?)", [id, jobId, step, JSON.stringify(metrics), model, now()]);
    return (await this.checkpoints(jobId)).find((c) => c.id === id)!;
  }

  async checkpoints(jobId: string): Promise<Checkpoint[]> {
    return (await this.db.all<CheckpointRow>("SELECT * FROM checkpoints WHERE job_id = ? ORDER BY step DESC", [jobId])).map(toCheckpoint);
  }
}
