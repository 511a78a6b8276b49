/**
 * `npm run bench -- --only replicas-faults`: faults of `plinth serve --replicas 3` under load.
 *
 * bench/replicas.ts's setup (a config-S GPT and 16 LoRA adapters in a registry on a throwaway
 * PostgreSQL cluster, --max-adapters 8), 3 replicas behind HAProxy with adapter-aware routing, and
 * 64 connections sending chats (32 tokens, every 4th streamed) over the 16 adapters all along.
 *
 * 1. kill -9. A LoRA fine-tuning job (PLINTH_FAULTS_JOB_STEPS steps, default 50) is submitted through
 *    the API. Once it trains, the replica running it (its worker's parent) and the worker are killed
 *    with SIGKILL, as when a machine dies, with streams in flight on every replica. Requests that
 *    failed are told apart: those of the killed replica (its x-plinth-replica header, or HAProxy's
 *    502 bad_gateway: a replica that died before it answered) and all others. HAProxy
 *    (src/serve/balancer.ts) retries a refused connection on another replica (retries 3, option
 *    redispatch 1) and health-checks each replica every second (down after 2 misses, up after 1),
 *    but never resends a request a replica had received (it may have been metered): those in
 *    flight on the killed replica fail: a cut stream, or no answer (a 502 on a client connection's
 *    first request; on a kept-alive one HAProxy closes the connection, so that the client may
 *    retry). Reported: when the
 *    command started the replica again, that the job was re-queued and succeeded in another
 *    process, every job event committed before the kill still there unchanged, the training
 *    metered once (one usage row).
 * 2. PostgreSQL restart. The cluster is stopped (fast shutdown), left down PLINTH_FAULTS_PG_DOWN_MS
 *    (default 3000) and started again, under the same load (a client whose request failed waits
 *    100 ms before its next one). Reported: 503s (with Retry-After) and any other error, how long
 *    after the database was back requests failed, the replicas' pids before and after (/healthz),
 *    and the registry before and after: every table's rows and sha256 (registryDigest, as
 *    `plinth registry digest` prints them) identical for tables the load does not write; for
 *    job_events and usage, every row of before present after (usage rows of requests in flight
 *    may only have grown); reservations and rate_hits come and go by design, and the requests'
 *    reservations must all be released once the load stops.
 *
 * Goals (process.exitCode 1 when one fails, each named on stderr): no error on the clients of the
 * replicas left alive; the killed replica started again; the job succeeded, its events kept, its
 * usage once; during the database restart only 503s, none after it plus PLINTH_FAULTS_RECOVER_S
 * (default 10); the same replica pids; nothing lost in the registry; no reservation left.
 * Needs PostgreSQL's server binaries and haproxy (apt-get install postgresql haproxy).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { REGISTRY_TABLES, Registry, type TableDigest, registryDigest } from "../src/registry/index.js";
import { startPostgres } from "../test/helpers/postgres.js";
import { type Grid, fresh, randomLoad, setup, startGrid } from "./replicas.js";
import { type RequestOutcome, quantile, round } from "./serve.js";

type Row = Record<string, string | number | boolean>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TERMINAL = ["succeeded", "failed", "cancelled"];

export interface FaultOptions {
  connections?: number;
  /** Steps of the fine-tuning job. */
  jobSteps?: number;
  /** Seconds of load after the killed replica is back and the job done, and after the database is back. */
  settleSeconds?: number;
  /** How long PostgreSQL stays down (ms). */
  pgDownMs?: number;
  /** Requests may fail for at most this long after PostgreSQL is back (s). */
  recoverSeconds?: number;
  /** The job must be done within this long after the kill (s). */
  jobTimeoutSeconds?: number;
}

/** Labeled sentences (UCI Sentiment Labelled Sentences, from the sentiment package), positive and negative in turn, as a fine-tuning file. */
function trainingFile(rows: number): string {
  const root = dirname(createRequire(import.meta.url).resolve("sentiment/package.json"));
  const all = (JSON.parse(readFileSync(join(root, "test", "fixtures", "imdb.json"), "utf8")) as { text: string; class: number | null }[]).filter((r) => r.class !== null);
  const pos = all.filter((r) => r.class === 1), neg = all.filter((r) => r.class === 0);
  const lines: string[] = [];
  for (let i = 0; i < rows / 2; i++) for (const [r, label] of [[pos[i], "positive"], [neg[i], "negative"]] as const) lines.push(JSON.stringify({ text: r.text.trim(), label }));
  return lines.join("\n") + "\n";
}

async function api(url: string, key: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const form = body instanceof FormData;
  const r = await fetch(`${url}${path}`, {
    method: body === undefined ? "GET" : "POST", body: body === undefined ? undefined : form ? body : JSON.stringify(body),
    headers: { authorization: `Bearer ${key}`, ...(body === undefined || form ? {} : { "content-type": "application/json" }) },
  });
  const json = await r.json() as Record<string, unknown>;
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}: ${JSON.stringify(json)}`);
  return json;
}

/** Each replica's pid from its own /healthz (null: not answering). */
async function replicaPids(grid: Grid): Promise<(number | null)[]> {
  return Promise.all(grid.replicas.map(async (r) => {
    try {
      return ((await (await fetch(`${r}/healthz`, { signal: AbortSignal.timeout(2000) })).json()) as { pid: number }).pid;
    } catch {
      return null;
    }
  }));
}

function parentOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return null;
  }
}

/** Times of a load's requests, relative to a moment (ms). */
const latencyRow = (rs: RequestOutcome[]): Row => {
  const sorted = rs.filter((r) => r.error === null).map((r) => r.t1 - r.t0).sort((a, b) => a - b);
  return { p50_ms: round(quantile(sorted, 0.5), 0), p99_ms: round(quantile(sorted, 0.99), 0) };
};

interface Goal { goal: string; measured: string; ok: boolean }

async function killPhase(grid: Grid, reg: Registry, key: string, models: string[], prompts: string[], o: Required<FaultOptions>, goals: Goal[]): Promise<Row> {
  const form = new FormData();
  form.append("purpose", "fine-tune");
  form.append("file", new Blob([trainingFile(64)]), "train.jsonl");
  const file = await api(grid.url, key, "/v1/files", form);
  const results: RequestOutcome[] = [];
  let stop = false;
  const m = fresh();
  const loadDone = randomLoad(grid.url, key, models, prompts, Infinity, o.connections, m, { onResult: (r) => results.push(r), stop: () => stop });
  const t0 = performance.now();
  try {
    const created = await api(grid.url, key, "/v1/fine_tuning/jobs", {
      model: "S", training_file: file.id, method: { type: "lora", lora: { hyperparameters: { steps: o.jobSteps, batch_size: 8, rank: 2, max_test: 8 } } },
    });
    const jobId = created.id as string;
    const createdAt = performance.now();
    // Training under load: running, with two steps' metrics committed.
    let j = (await reg.jobs.job(jobId))!;
    for (;;) {
      const metrics = (await reg.jobs.events(jobId, { order: "asc", limit: 100_000 })).filter((e) => e.type === "metrics").length;
      if (j.status === "running" && metrics >= 2) break;
      if (TERMINAL.includes(j.status)) throw new Error(`the job ended (${j.status}) before it could be killed: raise PLINTH_FAULTS_JOB_STEPS`);
      if (performance.now() - t0 > o.jobTimeoutSeconds * 1000) throw new Error(`the job is still ${j.status} after ${o.jobTimeoutSeconds}s`);
      await sleep(100);
      j = (await reg.jobs.job(jobId))!;
    }
    const worker = j.workerPid!;
    const replicaPid = parentOf(worker);
    const pidsAtKill = await replicaPids(grid);
    const index = replicaPid === null ? -1 : pidsAtKill.indexOf(replicaPid);
    if (index < 0) throw new Error(`the job's worker (pid ${worker}) is not the child of a replica (${pidsAtKill.join(", ")})`);
    const killed = `r${index + 1}`;
    const eventsAtKill = await reg.jobs.events(jobId, { order: "asc", limit: 100_000 });
    // The machine dies: the replica and its worker at once, streams in flight on every replica.
    const killAt = performance.now();
    process.kill(replicaPid!, "SIGKILL");
    process.kill(worker, "SIGKILL");
    let backAfter: number | null = null, newPid: number | null = null, requeuedAfter: number | null = null, doneAfter: number | null = null;
    let ranOn: string | null = null;
    while (backAfter === null || doneAfter === null) {
      if (performance.now() - killAt > o.jobTimeoutSeconds * 1000) break;
      const pids = await replicaPids(grid);
      if (backAfter === null && pids[index] !== null && pids[index] !== replicaPid) {
        backAfter = performance.now() - killAt;
        newPid = pids[index];
      }
      j = (await reg.jobs.job(jobId))!;
      if (requeuedAfter === null && (j.attempts > 1 || j.status === "queued" || (j.workerPid !== null && j.workerPid !== worker))) requeuedAfter = performance.now() - killAt;
      if (j.status === "running" && j.workerPid !== null && j.workerPid !== worker) {
        const parent = parentOf(j.workerPid);
        const at = parent === null ? -1 : pids.indexOf(parent);
        if (at >= 0) ranOn = `r${at + 1} (pid ${parent}${at === index ? ", started again" : ""})`;
      }
      if (doneAfter === null && TERMINAL.includes(j.status)) doneAfter = performance.now() - killAt;
      await sleep(200);
    }
    await sleep(o.settleSeconds * 1000);  // the load goes on a while over three replicas again
    stop = true;
    await loadDone;
    const endAt = performance.now();

    // The killed replica's requests: its header, or, in flight at the kill with no answer from a
    // replica, HAProxy's 502 (a client connection's first request) or the client connection closed
    // without an answer (HAProxy's way on a kept-alive connection, so that the client may retry).
    const noAnswer = (r: RequestOutcome) => r.replica === null && ((r.status === 502 && r.code === "bad_gateway") || (r.status === 0 && /UND_ERR_SOCKET/.test(r.error ?? "")));
    const onKilled = (r: RequestOutcome) => r.replica === killed || (noAnswer(r) && r.t0 < killAt && r.t1 >= killAt);
    const failed = results.filter((r) => r.error !== null);
    const failedKilled = failed.filter(onKilled), failedOthers = failed.filter((r) => !onKilled(r));
    const inFlight = results.filter((r) => r.t0 < killAt && r.t1 > killAt);
    const streamsOthers = inFlight.filter((r) => r.stream && r.replica !== null && r.replica !== killed);
    const streamsKilled = inFlight.filter((r) => r.stream && r.replica === killed);
    const restartedServed = results.filter((r) => r.replica === killed && r.t0 > killAt && r.error === null).length;
    const eventsAfter = await reg.jobs.events(jobId, { order: "asc", limit: 100_000 });
    const byId = new Map(eventsAfter.map((e) => [e.id, JSON.stringify(e)]));
    const lost = eventsAtKill.filter((e) => byId.get(e.id) !== JSON.stringify(e));
    const resumed = eventsAfter.find((e) => e.message.startsWith("Resuming: "));
    const usage = j.fineTunedModel === null ? 0 : Number((await reg.db.get<{ n: number | string }>("SELECT COUNT(*) AS n FROM usage WHERE kind = 'fine_tuning' AND model = ?", [j.fineTunedModel]))!.n);
    const s = (ms: number | null) => ms === null ? "never" : `${round(ms / 1000, 1)} s`;

    goals.push(
      { goal: "kill -9: no error for clients of the other replicas", measured: `${failedOthers.length} errors; ${streamsOthers.filter((r) => r.error === null).length} of ${streamsOthers.length} streams in flight there finished`, ok: failedOthers.length === 0 },
      { goal: "kill -9: the replica is started again", measured: `${killed} back after ${s(backAfter)} (pid ${replicaPid} -> ${newPid ?? "none"})`, ok: backAfter !== null },
      { goal: "kill -9: the job is re-queued and succeeds in another process", measured: `${j.status}; re-queued after ${s(requeuedAfter)}, ran on ${ranOn ?? "?"}, done ${s(doneAfter)} after the kill`, ok: j.status === "succeeded" && resumed !== undefined && j.workerPid !== worker },
      { goal: "kill -9: every event committed before the kill kept", measured: `${eventsAtKill.length - lost.length} of ${eventsAtKill.length} kept (${eventsAfter.length} after)`, ok: lost.length === 0 },
      { goal: "kill -9: the training is metered once", measured: `${usage} usage row(s) for ${j.fineTunedModel ?? "no model"}`, ok: usage === 1 },
    );
    return {
      impl: "plinth", bench: "replicas-faults", phase: "kill -9", replicas: 3, routing: "adapter", connections: o.connections,
      seconds: round((endAt - t0) / 1000, 1), requests: results.length, ok: results.length - failed.length,
      errors_killed_replica: failedKilled.length, errors_other_replicas: failedOthers.length,
      errors_killed_502: failedKilled.filter((r) => r.status === 502).length, errors_killed_closed: failedKilled.filter((r) => r.status === 0).length, errors_killed_streams_cut: failedKilled.filter((r) => r.status === 200).length,
      errors_started_after_kill: failed.filter((r) => r.t0 >= killAt).length,
      in_flight_at_kill: inFlight.length, streams_in_flight_killed: streamsKilled.length, streams_in_flight_others: streamsOthers.length,
      streams_finished_others: streamsOthers.filter((r) => r.error === null).length,
      killed, killed_pid: replicaPid!, restarted_pid: newPid ?? 0, replica_back_s: backAfter === null ? -1 : round(backAfter / 1000, 1),
      served_by_restarted: restartedServed, job_steps: o.jobSteps, job_killed_s_after_submit: round((killAt - createdAt) / 1000, 1),
      job_status: j.status, job_attempts: j.attempts, job_requeued_s: requeuedAfter === null ? -1 : round(requeuedAfter / 1000, 1),
      job_ran_on: ranOn ?? "?", job_done_s: doneAfter === null ? -1 : round(doneAfter / 1000, 1),
      events_before_kill: eventsAtKill.length, events_after: eventsAfter.length, events_lost: lost.length, job_usage_rows: usage,
      ...latencyRow(results),
      ...(failedOthers.length > 0 ? { first_error_other: `${failedOthers[0].replica ?? "balancer"}: ${failedOthers[0].error!.slice(0, 200)}` } : {}),
      ...(failedKilled.length > 0 ? { first_error_killed: failedKilled[0].error!.slice(0, 160) } : {}),
    };
  } finally {
    stop = true;
    await loadDone;
  }
}

interface Snapshot { digest: TableDigest[]; rows: Map<string, Map<string, Record<string, unknown>>> }

/** Every table's digest (as `plinth registry digest`) and its rows by key, in one transaction. */
async function snapshot(url: string): Promise<Snapshot> {
  const reg = await Registry.open(url);
  try {
    // One snapshot of every table (the load goes on meanwhile): a request's usage row and its
    // reservation are seen as of one moment.
    return await reg.tx(async () => {
      await reg.db.run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
      const digest = await registryDigest(reg);
      const rows = new Map<string, Map<string, Record<string, unknown>>>();
      for (const t of REGISTRY_TABLES) rows.set(t.name, new Map((await reg.db.all<Record<string, unknown>>(`SELECT * FROM ${t.name}`)).map((r) => [String(r[t.key]), r])));
      return { digest, rows };
    });
  } finally {
    await reg.close();
  }
}

/** Tables the load writes: rows of before that must be kept (usage rows may grow while their request settles). */
const KEPT = new Set(["job_events", "usage"]);
/** Tables whose rows come and go by design. */
const TRANSIENT = new Set(["reservations", "rate_hits"]);
const TOKENS = ["prompt_tokens", "completion_tokens", "training_tokens", "compute_seconds"];

export interface TableCheck { table: string; check: "identical" | "kept" | "transient"; rows_before: number; rows_after: number; sha_before: string; sha_after: string; lost: number; changed: number; ok: boolean }

/** Before against after: nothing lost (see the file's comment for what each table is held to). */
export function compareSnapshots(before: Snapshot, after: Snapshot): TableCheck[] {
  const open = new Set([...before.rows.get("reservations")!.values()].map((r) => String(r.usage_id)));
  return before.digest.map((d, i) => {
    const a = after.digest[i];
    const base = { table: d.table, rows_before: d.rows, rows_after: a.rows, sha_before: d.sha256.slice(0, 12), sha_after: a.sha256.slice(0, 12) };
    if (TRANSIENT.has(d.table)) return { ...base, check: "transient", lost: 0, changed: 0, ok: true };
    if (!KEPT.has(d.table)) {
      const same = d.rows === a.rows && d.sha256 === a.sha256;
      return { ...base, check: "identical", lost: Math.max(0, d.rows - a.rows), changed: same ? 0 : 1, ok: same };
    }
    const later = after.rows.get(d.table)!;
    let lost = 0, changed = 0;
    for (const [id, r] of before.rows.get(d.table)!) {
      const x = later.get(id);
      if (x === undefined) {
        // A request in flight that delivered nothing leaves no usage row: its zero row goes at its settle.
        if (!(d.table === "usage" && open.has(id) && TOKENS.every((c) => Number(r[c]) === 0))) lost++;
        continue;
      }
      const grown = d.table === "usage" && open.has(id) && TOKENS.every((c) => Number(x[c]) >= Number(r[c]))
        && Object.keys(r).filter((c) => !TOKENS.includes(c)).every((c) => JSON.stringify(x[c]) === JSON.stringify(r[c]));
      if (!grown && JSON.stringify(x) !== JSON.stringify(r)) changed++;
    }
    return { ...base, check: "kept", lost, changed, ok: lost === 0 && changed === 0 };
  });
}

const restartsIn = (log: string): number => (log.match(/replica r\d+ \(pid \d+\) exited/g) ?? []).length;

async function restartPhase(grid: Grid, restart: (downMs: number) => Promise<void>, url: string, key: string, models: string[], prompts: string[], o: Required<FaultOptions>, goals: Goal[]): Promise<{ row: Row; tables: TableCheck[] }> {
  const pidsBefore = await replicaPids(grid);
  const restartsBefore = restartsIn(grid.log());
  const results: RequestOutcome[] = [];
  let stop = false;
  const m = fresh();
  const loadDone = randomLoad(grid.url, key, models, prompts, Infinity, o.connections, m, { onResult: (r) => results.push(r), stop: () => stop, pauseAfterError: 100 });
  const t0 = performance.now();
  let before!: Snapshot, downAt!: number, upAt!: number;
  try {
    await sleep(5000);
    before = await snapshot(url);
    downAt = performance.now();
    await restart(o.pgDownMs);
    upAt = performance.now();
    await sleep(Math.max(o.settleSeconds, o.recoverSeconds + 5) * 1000);
  } finally {
    stop = true;
    await loadDone;
  }
  const endAt = performance.now();
  // Once the load stops, every request's reservation is settled (a settle retries while the database is away).
  const drainFrom = performance.now();
  let left = -1;
  {
    const reg = await Registry.open(url);
    try {
      for (;;) {
        left = Number((await reg.db.get<{ n: number | string }>("SELECT COUNT(*) AS n FROM reservations WHERE job_id IS NULL"))!.n);
        if (left === 0 || performance.now() - drainFrom > 60_000) break;
        await sleep(500);
      }
    } finally {
      await reg.close();
    }
  }
  const drainS = round((performance.now() - drainFrom) / 1000, 1);
  const after = await snapshot(url);
  const pidsAfter = await replicaPids(grid);
  const restarts = restartsIn(grid.log()) - restartsBefore;
  const tables = compareSnapshots(before, after);

  const failed = results.filter((r) => r.error !== null);
  const is503 = (r: RequestOutcome) => r.status === 503;
  const e503 = failed.filter(is503), other = failed.filter((r) => !is503(r));
  const lastErr = failed.reduce((t, r) => Math.max(t, r.t1), -Infinity);
  const failingAfterUp = lastErr === -Infinity ? 0 : Math.max(0, lastErr - upAt);
  const okAfter = results.filter((r) => r.error === null && r.t0 > lastErr).length;
  const inFlight = results.filter((r) => r.t0 < downAt && r.t1 > downAt);
  const samePids = pidsBefore.every((p, i) => p !== null && p === pidsAfter[i]) && restarts === 0;
  const lostRows = tables.reduce((s, t) => s + t.lost, 0), changedRows = tables.reduce((s, t) => s + t.changed, 0);
  const s = (ms: number) => `${round(ms / 1000, 1)} s`;

  goals.push(
    { goal: "pg restart: requests fail cleanly, with 503", measured: `${e503.length} x 503 (${e503.filter((r) => r.retryAfter !== null).length} with retry-after, ${e503.filter((r) => r.replica === null).length} from the balancer), ${other.length} other errors`, ok: other.length === 0 },
    { goal: "pg restart: requests succeed again", measured: `last error ${s(failingAfterUp)} after the database was back; ${okAfter} requests succeeded after it`, ok: failingAfterUp <= o.recoverSeconds * 1000 && okAfter > 0 },
    { goal: "pg restart: no replica restarted", measured: `pids ${pidsBefore.join(", ")} -> ${pidsAfter.join(", ")}`, ok: samePids },
    { goal: "pg restart: nothing lost in the registry", measured: `${tables.length} tables: ${lostRows} rows lost, ${changedRows} changed`, ok: tables.every((t) => t.ok) },
    { goal: "pg restart: every request's reservation released", measured: `${left} left ${drainS} s after the load stopped`, ok: left === 0 },
  );
  const row: Row = {
    impl: "plinth", bench: "replicas-faults", phase: "postgres restart", replicas: 3, routing: "adapter", connections: o.connections,
    seconds: round((endAt - t0) / 1000, 1), down_ms: o.pgDownMs, outage_s: round((upAt - downAt) / 1000, 1),
    requests: results.length, ok: results.length - failed.length, errors_503: e503.length,
    errors_503_retry_after: e503.filter((r) => r.retryAfter !== null).length, errors_503_balancer: e503.filter((r) => r.replica === null).length,
    errors_other: other.length, in_flight_at_stop: inFlight.length, in_flight_at_stop_ok: inFlight.filter((r) => r.error === null).length,
    first_503_s: e503.length === 0 ? -1 : round((Math.min(...e503.map((r) => r.t1)) - downAt) / 1000, 2),
    errors_until_s_after_up: round(failingAfterUp / 1000, 2), ok_after_last_error: okAfter,
    replica_pids_same: samePids, replica_restarts: restarts, reservations_left: left, tables: tables.length, rows_lost: lostRows, rows_changed: changedRows,
    ...latencyRow(results),
    ...(other.length > 0 ? { first_error_other: `${other[0].replica ?? "balancer"}: ${other[0].error!.slice(0, 200)}` } : {}),
  };
  return { row, tables };
}

export interface FaultsResult { rows: Row[]; goals: Goal[]; tables: TableCheck[] }

export async function replicasFaultsBench(opts: FaultOptions = {}): Promise<FaultsResult> {
  const o: Required<FaultOptions> = {
    connections: opts.connections ?? 64, jobSteps: opts.jobSteps ?? 50, settleSeconds: opts.settleSeconds ?? 5, pgDownMs: opts.pgDownMs ?? 3000,
    recoverSeconds: opts.recoverSeconds ?? 10, jobTimeoutSeconds: opts.jobTimeoutSeconds ?? 600,
  };
  if (!(Number.isInteger(o.pgDownMs) && o.pgDownMs >= 0)) throw new Error(`replicas-faults: the database's down time must be a whole number of ms, got ${o.pgDownMs}`);
  if (!(o.recoverSeconds > 0)) throw new Error(`replicas-faults: recover seconds must be positive, got ${o.recoverSeconds}`);
  if (!(Number.isInteger(o.jobSteps) && o.jobSteps >= 4)) throw new Error(`replicas-faults: job steps must be an integer of at least 4, got ${o.jobSteps}`);
  if (!(Number.isInteger(o.connections) && o.connections >= 1)) throw new Error(`replicas-faults: connections must be a positive integer, got ${o.connections}`);
  const dir = mkdtempSync(join(tmpdir(), "plinth-bench-faults-"));
  const pg = await startPostgres();
  const rows: Row[] = [], goals: Goal[] = [];
  let tables: TableCheck[] = [];
  try {
    const url = await pg.database("bench");
    const { key, models, prompts } = await setup(dir, url);
    const grid = await startGrid(["--replicas", "3", "--route", "adapter", "--registry", url, "--data-dir", dir, "--port", "0", "--max-adapters", "8"]);
    const reg = await Registry.open(url);
    try {
      await randomLoad(grid.url, key, models, prompts, 5, o.connections, fresh());  // warm-up
      rows.push(await killPhase(grid, reg, key, models, prompts, o, goals));
      await reg.close();
      const r = await restartPhase(grid, (ms) => pg.restart(ms), url, key, models, prompts, o, goals);
      rows.push(r.row);
      tables = r.tables;
      for (const t of tables) rows.push({ impl: "plinth", bench: "replicas-faults", phase: "registry before/after the restart", ...t });
      if (goals.some((g) => !g.ok)) {
        const path = join(tmpdir(), `plinth-bench-faults-${process.pid}.log`);
        writeFileSync(path, grid.log());
        console.error(`replicas-faults: a goal failed; what plinth serve --replicas and its replicas said is in ${path}`);
      }
    } finally {
      if (reg.db.open) await reg.close();
      grid.child.kill("SIGTERM");
      await new Promise((r) => grid.child.once("exit", r));
    }
  } finally {
    await pg.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return { rows, goals, tables };
}

/** The goals as a short table. */
export function faultsTable(goals: Goal[]): string {
  const w = Math.max(...goals.map((g) => g.goal.length));
  return goals.map((g) => `${g.ok ? "ok  " : "FAIL"}  ${g.goal.padEnd(w)}  ${g.measured}`).join("\n");
}
