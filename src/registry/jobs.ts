/**
 * Datasets (uploaded files) and fine-tuning jobs with their events and checkpoints. Every
 * state change is one transaction, so a killed server or worker leaves the last committed
 * state: a job is queued, running (with its worker's pid and heartbeat), or finished.
 */
import { randomBytes } from "node:crypto";
import { type Database, now } from "./db.js";

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
  seed: number; audit_suite: string | null; status: JobStatus; attempts: number; worker_pid: number | null; heartbeat: number | null; fine_tuned_model: string | null;
  error: string | null; trained_tokens: number | null; created: number; started: number | null; finished: number | null;
}
interface FileRow { id: string; tenant: string; filename: string; purpose: string; bytes: number; path: string; rows: number; labels: string; sha256: string; created: number }
interface EventRow { id: number; job_id: string; created: number; level: JobEvent["level"]; type: JobEvent["type"]; message: string; data: string | null }
interface CheckpointRow { id: string; job_id: string; step: number; metrics: string; model: string; created: number }

const toJob = (r: JobRow): JobEntry => ({
  id: r.id, tenant: r.tenant, keyId: r.key_id, model: r.model, trainingFile: r.training_file, validationFile: r.validation_file ?? null, method: r.method,
  hyperparameters: JSON.parse(r.hyperparameters) as Record<string, number>, suffix: r.suffix, seed: r.seed, auditSuite: r.audit_suite, status: r.status,
  attempts: r.attempts, workerPid: r.worker_pid, heartbeat: r.heartbeat, fineTunedModel: r.fine_tuned_model,
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

export class JobStore {
  constructor(private readonly db: Database) {}

  addFile(f: Omit<FileEntry, "id" | "created">): FileEntry {
    const id = `file-${randomBytes(12).toString("hex")}`;
    this.db.prepare("INSERT INTO files (id, tenant, filename, purpose, bytes, path, rows, labels, sha256, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
      .run(id, f.tenant, f.filename, f.purpose, f.bytes, f.path, f.rows, JSON.stringify(f.labels), f.sha256, now());
    return this.file(id)!;
  }

  file(id: string): FileEntry | undefined {
    const r = this.db.prepare<FileRow>("SELECT * FROM files WHERE id = ?").get(id);
    return r === undefined ? undefined : toFile(r);
  }

  files(tenant: string): FileEntry[] {
    return this.db.prepare<FileRow>("SELECT * FROM files WHERE tenant = ? ORDER BY created DESC, id DESC").all(tenant).map(toFile);
  }

  /** Deletes a file the tenant no longer needs; refuses one that a job trained (or will train) on. */
  deleteFile(id: string): { usedBy: string | null } {
    const used = this.db.prepare<{ id: string }>("SELECT id FROM jobs WHERE training_file = ? OR validation_file = ? LIMIT 1").get(id, id);
    if (used !== undefined) return { usedBy: used.id };
    this.db.prepare("DELETE FROM files WHERE id = ?").run(id);
    return { usedBy: null };
  }

  createJob(j: Pick<JobEntry, "tenant" | "keyId" | "model" | "trainingFile" | "method" | "hyperparameters" | "suffix" | "seed"> & { auditSuite?: string | null; validationFile?: string | null }): JobEntry {
    const id = `ftjob-${randomBytes(12).toString("hex")}`;
    this.db.transaction(() => {
      this.db.prepare(`INSERT INTO jobs (id, tenant, key_id, model, training_file, validation_file, method, hyperparameters, suffix, seed, audit_suite, status, created)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?)`)
        .run(id, j.tenant, j.keyId, j.model, j.trainingFile, j.validationFile ?? null, j.method, JSON.stringify(j.hyperparameters), j.suffix, j.seed, j.auditSuite ?? null, now());
      this.addEvent(id, "info", `Created fine-tuning job (${j.method} on ${j.model})`);
    })();
    return this.job(id)!;
  }

  job(id: string): JobEntry | undefined {
    const r = this.db.prepare<JobRow>("SELECT * FROM jobs WHERE id = ?").get(id);
    return r === undefined ? undefined : toJob(r);
  }

  /** A tenant's jobs, newest first, `limit` after the job `after` (a cursor from an earlier page). */
  jobs(tenant: string, { after, limit = 20 }: Page = {}): { data: JobEntry[]; hasMore: boolean } {
    let rows: JobRow[];
    if (after === undefined) {
      rows = this.db.prepare<JobRow>("SELECT * FROM jobs WHERE tenant = ? ORDER BY rowid DESC LIMIT ?").all(tenant, limit + 1);
    } else {
      const cursor = this.db.prepare<{ rowid: number }>("SELECT rowid FROM jobs WHERE id = ? AND tenant = ?").get(after, tenant);
      if (cursor === undefined) throw new CursorError("after", after, "a fine-tuning job id of yours from an earlier page");
      rows = this.db.prepare<JobRow>("SELECT * FROM jobs WHERE tenant = ? AND rowid < ? ORDER BY rowid DESC LIMIT ?").all(tenant, cursor.rowid, limit + 1);
    }
    return { data: rows.slice(0, limit).map(toJob), hasMore: rows.length > limit };
  }

  jobsWithStatus(...statuses: JobStatus[]): JobEntry[] {
    return this.db.prepare<JobRow>(`SELECT * FROM jobs WHERE status IN (${statuses.map(() => "?").join(",")}) ORDER BY rowid`).all(...statuses).map(toJob);
  }

  /** Claims a queued job for a worker; false if it is no longer queued (cancelled, or claimed). */
  claim(id: string, pid: number): boolean {
    return this.db.transaction(() => {
      const r = this.db.prepare("UPDATE jobs SET status = 'running', worker_pid = ?, heartbeat = ?, attempts = attempts + 1, started = COALESCE(started, ?) WHERE id = ? AND status = 'queued'")
        .run(pid, Date.now(), now(), id);
      if (r.changes === 1) this.addEvent(id, "info", `Fine-tuning job started (worker pid ${pid})`);
      return r.changes === 1;
    })();
  }

  /**
   * A running job that gave its worker back (time-sliced: checkpointed so other tenants' jobs can
   * run) goes back to the queue. Being preempted is not a failed attempt, so it does not count
   * against the job's attempts.
   */
  requeuePreempted(id: string, message: string): boolean {
    return this.db.transaction(() => {
      const r = this.db.prepare("UPDATE jobs SET status = 'queued', worker_pid = NULL, attempts = MAX(0, attempts - 1) WHERE id = ? AND status = 'running'").run(id);
      if (r.changes === 1) this.addEvent(id, "info", message);
      return r.changes === 1;
    })();
  }

  /** The id of the job's newest event (0 when it has none): a mark to ask hasTrainedSince about. */
  lastEventId(jobId: string): number {
    return this.db.prepare<{ id: number | null }>("SELECT MAX(id) AS id FROM job_events WHERE job_id = ?").get(jobId)?.id ?? 0;
  }

  /** Whether the job has reported a training step (a metrics event) after the event `afterId`. */
  hasTrainedSince(jobId: string, afterId: number): boolean {
    return this.db.prepare("SELECT 1 FROM job_events WHERE job_id = ? AND id > ? AND type = 'metrics' LIMIT 1").get(jobId, afterId) !== undefined;
  }

  /** The data of the job's newest metrics event (step, total_steps, elapsed_seconds, ...), if any. */
  lastMetrics(jobId: string): Record<string, number> | null {
    const r = this.db.prepare<{ data: string }>("SELECT data FROM job_events WHERE job_id = ? AND type = 'metrics' ORDER BY id DESC LIMIT 1").get(jobId);
    return r === undefined ? null : (JSON.parse(r.data) as Record<string, number>);
  }

  heartbeat(id: string): void {
    this.db.prepare("UPDATE jobs SET heartbeat = ? WHERE id = ? AND status = 'running'").run(Date.now(), id);
  }

  /** Moves a job to a new status if it is in one of `from`; returns whether it moved. */
  transition(id: string, from: JobStatus[], to: JobStatus, fields: { error?: JobEntry["error"]; fineTunedModel?: string; trainedTokens?: number; message?: string; level?: JobEvent["level"] } = {}): boolean {
    return this.db.transaction(() => {
      const terminal = TERMINAL.has(to);
      const r = this.db.prepare(`UPDATE jobs SET status = ?, error = COALESCE(?, error), fine_tuned_model = COALESCE(?, fine_tuned_model),
          trained_tokens = COALESCE(?, trained_tokens), finished = CASE WHEN ? THEN ? ELSE finished END,
          worker_pid = CASE WHEN ? THEN NULL ELSE worker_pid END
        WHERE id = ? AND status IN (${from.map(() => "?").join(",")})`)
        .run(to, fields.error === undefined ? null : JSON.stringify(fields.error), fields.fineTunedModel ?? null, fields.trainedTokens ?? null,
          terminal ? 1 : 0, now(), terminal || to === "queued" ? 1 : 0, id, ...from);
      if (r.changes === 1 && fields.message !== undefined) this.addEvent(id, fields.level ?? "info", fields.message);
      return r.changes === 1;
    })();
  }

  addEvent(jobId: string, level: JobEvent["level"], message: string, data: Record<string, number> | null = null): void {
    this.db.prepare("INSERT INTO job_events (job_id, created, level, type, message, data) VALUES (?, ?, ?, ?, ?, ?)")
      .run(jobId, now(), level, data === null ? "message" : "metrics", message, data === null ? null : JSON.stringify(data));
  }

  /** Events oldest first (for loss curves), or a page newest first after an event id. */
  /** A job's events in id order (newest first by default), `limit` after the event `after` ("ftevent-<id>"). */
  events(jobId: string, { after, limit = 1000, order = "desc" }: Page & { order?: "asc" | "desc" } = {}): JobEvent[] {
    const dir = order === "asc" ? "ASC" : "DESC";
    if (after === undefined) {
      return this.db.prepare<EventRow>(`SELECT * FROM job_events WHERE job_id = ? ORDER BY id ${dir} LIMIT ?`).all(jobId, limit).map(toEvent);
    }
    const id = /^ftevent-(\d+)$/.exec(after)?.[1];
    const cursor = id === undefined ? undefined : this.db.prepare<{ id: number }>("SELECT id FROM job_events WHERE id = ? AND job_id = ?").get(Number(id), jobId);
    if (cursor === undefined) throw new CursorError("after", after, `an event id of job ${jobId} ("ftevent-<n>") from an earlier page`);
    return this.db.prepare<EventRow>(`SELECT * FROM job_events WHERE job_id = ? AND id ${order === "asc" ? ">" : "<"} ? ORDER BY id ${dir} LIMIT ?`)
      .all(jobId, cursor.id, limit).map(toEvent);
  }

  addCheckpoint(jobId: string, step: number, metrics: Record<string, number>, model: string): Checkpoint {
    const id = `ftckpt-${randomBytes(12).toString("hex")}`;
    this.db.prepare("INSERT INTO checkpoints (id, job_id, step, metrics, model, created) VALUES (?, ?, ?, ?, ?, ?)").run(id, jobId, step, JSON.stringify(metrics), model, now());
    return this.checkpoints(jobId).find((c) => c.id === id)!;
  }

  checkpoints(jobId: string): Checkpoint[] {
    return this.db.prepare<CheckpointRow>("SELECT * FROM checkpoints WHERE job_id = ? ORDER BY step DESC").all(jobId).map(toCheckpoint);
  }
}
