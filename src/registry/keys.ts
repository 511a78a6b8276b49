/**
 * API keys, usage and token quotas. A key is shown once when created or rotated ("pk-" + 32
 * random bytes, base64url); the registry keeps only its sha256. Each key belongs to a tenant
 * (a name like `acme` or `team-7`: it becomes a folder name) and may carry a request rate limit
 * (per minute) and a token quota (prompt + completion + training tokens).
 *
 * A quota is a hard limit: work reserves its worst case before it starts (`reserve`), in the
 * same transaction that checks used + reserved against the quota, and is granted at most what
 * is left; as tokens are delivered they move from the reservation to the usage row (`meter`),
 * and the end settles the difference (`settle`). used + reserved never exceeds the quota.
 *
 *     const r = keys.reserve(key, { kind: "chat", model: "tiny", min: 12, max: 12 + 4 * 50 });   // null: over quota
 *     keys.meter(r.id, { completionTokens: 16 });  ...  keys.settle(r.id, { promptTokens: 12, completionTokens: 3 });
 */
import { createHash, randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { now } from "./db.js";
import type { Store } from "./store.js";
import { TERMINAL } from "./jobs.js";

export interface ApiKey {
  id: string;
  tenant: string;
  name: string;
  prefix: string;
  rpm: number | null;
  tokenQuota: number | null;
  created: number;
  revoked: boolean;
}

export type UsageKind = "completion" | "chat" | "embedding" | "classification" | "fine_tuning";

export interface UsageRecord {
  keyId: string;
  tenant: string;
  kind: UsageKind;
  model: string;
  promptTokens?: number;
  completionTokens?: number;
  trainingTokens?: number;
  computeSeconds?: number;
}

export type UsageDelta = Partial<Pick<UsageRecord, "promptTokens" | "completionTokens" | "trainingTokens" | "computeSeconds">>;

export interface UsageTotals {
  key_id: string;
  kind: string;
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  training_tokens: number;
  compute_seconds: number;
}

/** Where a key stands against its quota (available is Infinity without one). */
export interface QuotaState {
  quota: number | null;
  used: number;
  reserved: number;
  available: number;
}

/** Tokens held for one request (with its usage row) or one fine-tuning job. */
export interface Reservation {
  id: string;
  keyId: string;
  usageId: number | null;
  jobId: string | null;
  granted: number;
}

/** Tenant names: lower-case letters, digits, `_` and `-`, starting with a letter or digit (they name folders). */
export const TENANT_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;
export const TENANT_RULE = "1-64 characters of lower-case letters, digits, _ and -, starting with a letter or digit";

/** Why a tenant name is refused, or null if it is a valid one. */
export function tenantProblem(tenant: unknown): string | null {
  if (typeof tenant !== "string") return `tenant must be a string, got ${typeof tenant}`;
  if (TENANT_PATTERN.test(tenant)) return null;
  return `tenant ${JSON.stringify(tenant.length > 80 ? `${tenant.slice(0, 80)}…` : tenant)} must be ${TENANT_RULE}`;
}

interface KeyRow {
  id: string; tenant: string; name: string; prefix: string; rpm: number | null; token_quota: number | null; created: number; revoked: number;
}
interface ReservationRow { id: string; key_id: string; usage_id: number | null; job_id: string | null; holder: number | null; held: number; created: number }

const hashKey = (key: string): string => createHash("sha256").update(key).digest("hex");
const newSecret = (): string => `pk-${randomBytes(32).toString("base64url")}`;
const toKey = (r: KeyRow): ApiKey => ({
  id: r.id, tenant: r.tenant, name: r.name, prefix: r.prefix, rpm: r.rpm, tokenQuota: r.token_quota, created: r.created, revoked: r.revoked !== 0,
});
const tokensOf = (d: UsageDelta): number => (d.promptTokens ?? 0) + (d.completionTokens ?? 0) + (d.trainingTokens ?? 0);
/** The rate limit's window: requests per minute. */
const RATE_WINDOW_MS = 60_000;
const TERMINAL_SQL = [...TERMINAL].map((s) => `'${s}'`).join(", ");

/** Limits for keys created without their own (a server's policy; a key's own limit wins). */
export interface KeyDefaults {
  rpm: number | null;
  tokenQuota: number | null;
}

export class KeyStore {
  private defaults: KeyDefaults = { rpm: null, tokenQuota: null };
  constructor(private readonly db: Store) {}

  /**
   * Limits a key without its own gets in this process (`plinth serve --default-rpm`,
   * `--default-token-quota`): get(), verify() and quota() report them as the key's, so the gate
   * and the reservations enforce them; list() shows what each key itself holds.
   */
  setDefaults(d: Partial<KeyDefaults>): void {
    const next = { ...this.defaults, ...d };
    for (const [k, v] of Object.entries(next)) {
      if (v !== null && !(Number.isInteger(v) && v > 0)) throw new RangeError(`keys.setDefaults: ${k} must be a positive integer or null, got ${v}`);
    }
    this.defaults = next;
  }

  private withDefaults(k: ApiKey): ApiKey {
    return { ...k, rpm: k.rpm ?? this.defaults.rpm, tokenQuota: k.tokenQuota ?? this.defaults.tokenQuota };
  }

  /** Creates a key; the returned `secret` is the only copy of it. */
  async create(tenant: string, { name = "default", rpm = null, tokenQuota = null }: { name?: string; rpm?: number | null; tokenQuota?: number | null } = {}): Promise<{ key: ApiKey; secret: string }> {
    const problem = tenantProblem(tenant);
    if (problem !== null) throw new Error(`keys.create: ${problem}`);
    if (typeof name !== "string" || name.length === 0 || name.length > 64 || /[\x00-\x1f\x7f]/.test(name)) throw new Error(`keys.create: name must be 1-64 printable characters, got ${JSON.stringify(name)}`);
    for (const [k, v] of [["rpm", rpm], ["tokenQuota", tokenQuota]] as const) {
      if (v !== null && !(Number.isInteger(v) && v > 0)) throw new Error(`keys.create: ${k} must be a positive integer or null, got ${v}`);
    }
    const secret = newSecret();
    const id = `key_${randomBytes(8).toString("hex")}`;
    await this.db.run("INSERT INTO api_keys (id, tenant, name, hash, prefix, rpm, token_quota, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      [id, tenant, name, hashKey(secret), secret.slice(0, 7), rpm, tokenQuota, now()]);
    return { key: (await this.get(id))!, secret };
  }

  async get(id: string): Promise<ApiKey | undefined> {
    const r = await this.db.get<KeyRow>("SELECT * FROM api_keys WHERE id = ?", [id]);
    return r === undefined ? undefined : this.withDefaults(toKey(r));
  }

  /** The live key a secret belongs to, or undefined. */
  async verify(secret: string): Promise<ApiKey | undefined> {
    const r = await this.db.get<KeyRow>("SELECT * FROM api_keys WHERE hash = ? AND revoked = 0", [hashKey(secret)]);
    return r === undefined ? undefined : this.withDefaults(toKey(r));
  }

  /** A tenant's keys (revoked ones included), or every key when no tenant is given. */
  async list(tenant?: string): Promise<ApiKey[]> {
    if (tenant === undefined) return (await this.db.all<KeyRow>("SELECT * FROM api_keys ORDER BY tenant, created, id")).map(toKey);
    return (await this.db.all<KeyRow>("SELECT * FROM api_keys WHERE tenant = ? ORDER BY created, id", [tenant])).map(toKey);
  }

  /**
   * A new secret for a live key: the same id, tenant, limits and usage (so rotating never
   * resets a quota); the old secret stops working at once. Undefined for an unknown or revoked key.
   */
  async rotate(id: string): Promise<{ key: ApiKey; secret: string } | undefined> {
    const secret = newSecret();
    const changed = await this.db.run("UPDATE api_keys SET hash = ?, prefix = ? WHERE id = ? AND revoked = 0", [hashKey(secret), secret.slice(0, 7), id]);
    return changed === 1 ? { key: (await this.get(id))!, secret } : undefined;
  }

  /** Revokes a key for good (its usage stays); false if there is no such key. */
  async revoke(id: string): Promise<boolean> {
    return (await this.db.run("UPDATE api_keys SET revoked = 1 WHERE id = ?", [id])) === 1;
  }

  /** One usage row, written whole (work metered at its end, like a fine-tuning job's training). */
  async record(u: UsageRecord): Promise<void> {
    await this.db.run(`INSERT INTO usage (key_id, tenant, kind, model, prompt_tokens, completion_tokens, training_tokens, compute_seconds, created)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [u.keyId, u.tenant, u.kind, u.model, u.promptTokens ?? 0, u.completionTokens ?? 0, u.trainingTokens ?? 0, u.computeSeconds ?? 0, now()]);
  }

  /** Tokens a key has used in all (prompt + completion + training), for its quota. */
  async tokensUsed(keyId: string): Promise<number> {
    const r = await this.db.get<{ n: number | null }>("SELECT SUM(prompt_tokens + completion_tokens + training_tokens) AS n FROM usage WHERE key_id = ?", [keyId]);
    return r?.n ?? 0;
  }

  /** Tokens held by a key's work in flight: requests, and fine-tuning jobs not yet finished. */
  async tokensReserved(keyId: string): Promise<number> {
    const r = await this.db.get<{ n: number | null }>(`SELECT SUM(r.held) AS n FROM reservations r LEFT JOIN jobs j ON j.id = r.job_id
      WHERE r.key_id = ? AND (r.job_id IS NULL OR (j.status IS NOT NULL AND j.status NOT IN (${TERMINAL_SQL})))`, [keyId]);
    return r?.n ?? 0;
  }

  async quota(keyId: string): Promise<QuotaState> {
    const key = await this.get(keyId);
    // Used and reserved in one statement, so one snapshot: on PostgreSQL (READ COMMITTED) two
    // statements could straddle another replica's settle, which moves tokens from one to the other.
    const r = await this.db.get<{ used: number | null; reserved: number | null }>(`SELECT
        (SELECT SUM(prompt_tokens + completion_tokens + training_tokens) FROM usage WHERE key_id = ?) AS used,
        (SELECT SUM(r.held) FROM reservations r LEFT JOIN jobs j ON j.id = r.job_id
          WHERE r.key_id = ? AND (r.job_id IS NULL OR (j.status IS NOT NULL AND j.status NOT IN (${TERMINAL_SQL})))) AS reserved`, [keyId, keyId]);
    const used = r?.used ?? 0, reserved = r?.reserved ?? 0;
    const quota = key?.tokenQuota ?? null;
    return { quota, used, reserved, available: quota === null ? Infinity : Math.max(0, quota - used - reserved) };
  }

  /**
   * Counts one request against a key's requests-per-minute limit: a sliding window over the
   * last 60 s, kept in the registry so that every replica counts into one window. Returns the
   * requests in the window (this one included) when it fits, or, when the window is full, how
   * long until its oldest request leaves it (nothing counted). The key's row is locked for the
   * transaction (replicas admitting for one key take turns); on PostgreSQL the database's clock
   * times the window, so replicas on machines whose clocks differ still share one window.
   */
  async hit(key: Pick<ApiKey, "id" | "rpm">): Promise<{ allowed: true; used: number } | { allowed: false; used: number; retryMs: number }> {
    const rpm = key.rpm;
    if (rpm === null) return { allowed: true, used: 0 };
    return this.db.tx(async () => {
      await this.db.get(`SELECT id FROM api_keys WHERE id = ?${this.db.dialect.forUpdate}`, [key.id]);
      const t = this.db.dialect.name === "postgres"
        ? (await this.db.get<{ t: number }>("SELECT CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp()) * 1000) AS BIGINT) AS t"))!.t
        : now();
      await this.db.run("DELETE FROM rate_hits WHERE key_id = ? AND at <= ?", [key.id, t - RATE_WINDOW_MS]);
      const w = (await this.db.get<{ n: number; oldest: number | null }>("SELECT COUNT(*) AS n, MIN(at) AS oldest FROM rate_hits WHERE key_id = ?", [key.id]))!;
      if (w.n >= rpm) return { allowed: false as const, used: w.n, retryMs: Math.max(0, (w.oldest ?? t) + RATE_WINDOW_MS - t) };
      await this.db.run("INSERT INTO rate_hits (key_id, at) VALUES (?, ?)", [key.id, t]);
      return { allowed: true as const, used: w.n + 1 };
    });
  }

  /**
   * Reserves between `min` and `max` tokens for a key's work, atomically against its quota:
   * granted = min(max, quota - used - reserved), or null (nothing reserved) when that is below
   * `min`. A request's reservation comes with its usage row (zero so far); a job's (`jobId`) is
   * released when the job finishes, whatever way it ends. `holder`: the process that meters it.
   * On PostgreSQL the key's row is locked for the transaction, so replicas reserving for one key
   * at once take turns (the quota holds across replicas).
   */
  async reserve(key: Pick<ApiKey, "id" | "tenant">, r: { kind: UsageKind; model: string; min: number; max: number; jobId?: string; holder?: number }): Promise<Reservation | null> {
    if (!(Number.isInteger(r.min) && Number.isInteger(r.max) && r.min >= 0 && r.max >= r.min)) throw new RangeError(`keys.reserve: need integers 0 <= min <= max, got min ${r.min}, max ${r.max}`);
    return this.db.tx(async (): Promise<Reservation | null> => {
      await this.db.get(`SELECT id FROM api_keys WHERE id = ?${this.db.dialect.forUpdate}`, [key.id]);
      // Reservations of finished jobs hold nothing: drop them while the write lock is held anyway.
      await this.db.run(`DELETE FROM reservations WHERE key_id = ? AND job_id IN (SELECT id FROM jobs WHERE status IN (${TERMINAL_SQL}))`, [key.id]);
      const { available } = await this.quota(key.id);
      if (available < r.min) return null;
      const granted = Math.min(r.max, available);
      const id = `res_${randomBytes(8).toString("hex")}`;
      let usageId: number | null = null;
      if (r.jobId === undefined) {
        usageId = (await this.db.get<{ id: number }>("INSERT INTO usage (key_id, tenant, kind, model, created) VALUES (?, ?, ?, ?, ?) RETURNING id", [key.id, key.tenant, r.kind, r.model, now()]))!.id;
      }
      await this.db.run("INSERT INTO reservations (id, key_id, usage_id, job_id, holder, held, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [id, key.id, usageId, r.jobId ?? null, r.holder ?? holderId(), granted, now()]);
      return { id, keyId: key.id, usageId, jobId: r.jobId ?? null, granted };
    });
  }

  /** Moves delivered tokens from a request's reservation to its usage row (one transaction). */
  async meter(reservationId: string, d: UsageDelta): Promise<void> {
    await this.db.tx(() => this.apply(reservationId, d));
  }

  /** Meters the last tokens and releases what is left of the reservation; a request that used nothing leaves no usage row. */
  async settle(reservationId: string, d: UsageDelta = {}): Promise<void> {
    await this.db.tx(async () => {
      const row = await this.apply(reservationId, d);
      if (row === undefined) return;
      await this.db.run("DELETE FROM reservations WHERE id = ?", [reservationId]);
      if (row.usage_id !== null) {
        await this.db.run("DELETE FROM usage WHERE id = ? AND prompt_tokens = 0 AND completion_tokens = 0 AND training_tokens = 0 AND compute_seconds = 0", [row.usage_id]);
      }
    });
  }

  private async apply(reservationId: string, d: UsageDelta): Promise<ReservationRow | undefined> {
    const row = await this.db.get<ReservationRow>(`SELECT * FROM reservations WHERE id = ?${this.db.dialect.forUpdate}`, [reservationId]);
    if (row === undefined) return undefined;
    const tokens = tokensOf(d);
    if (tokens === 0 && (d.computeSeconds ?? 0) === 0) return row;
    if (row.usage_id !== null) {
      await this.db.run(`UPDATE usage SET prompt_tokens = prompt_tokens + ?, completion_tokens = completion_tokens + ?, training_tokens = training_tokens + ?,
        compute_seconds = compute_seconds + ? WHERE id = ?`, [d.promptTokens ?? 0, d.completionTokens ?? 0, d.trainingTokens ?? 0, d.computeSeconds ?? 0, row.usage_id]);
    }
    await this.db.run("UPDATE reservations SET held = CASE WHEN held > ? THEN held - ? ELSE 0 END WHERE id = ?", [tokens, tokens, reservationId]);
    return row;
  }

  /**
   * Releases request reservations whose metering process is gone (a server killed mid-request,
   * or this process before a restart): their usage rows keep what was metered before the crash.
   * Jobs' reservations stay with their jobs. `alive` says whether a holder (a pid on this
   * machine) still runs; holders of other machines are left to their own replicas. Returns how
   * many were released.
   */
  async releaseOrphans(alive: (pid: number) => boolean): Promise<number> {
    return this.db.tx(async () => {
      const rows = await this.db.all<ReservationRow>("SELECT * FROM reservations WHERE job_id IS NULL");
      let n = 0;
      for (const r of rows) {
        if (r.holder !== null) {
          const host = Math.floor(r.holder / PID_SPAN), pid = r.holder % PID_SPAN;
          if (host !== 0 && host !== HOST_TAG) continue;  // another machine's replica: only it can tell
          if (r.holder !== holderId() && alive(pid)) continue;
        }
        await this.db.run("DELETE FROM reservations WHERE id = ?", [r.id]);
        if (r.usage_id !== null) await this.db.run("DELETE FROM usage WHERE id = ? AND prompt_tokens = 0 AND completion_tokens = 0 AND training_tokens = 0 AND compute_seconds = 0", [r.usage_id]);
        n++;
      }
      return n;
    });
  }

  /** Usage of a tenant's keys, summed per key and kind, between two unix times. */
  async usage(tenant: string, { since = 0, until = Number.MAX_SAFE_INTEGER, keyId }: { since?: number; until?: number; keyId?: string } = {}): Promise<UsageTotals[]> {
    return this.db.all<UsageTotals>(`SELECT key_id, kind, COUNT(*) AS requests, SUM(prompt_tokens) AS prompt_tokens,
        SUM(completion_tokens) AS completion_tokens, SUM(training_tokens) AS training_tokens, SUM(compute_seconds) AS compute_seconds
      FROM usage WHERE tenant = ? AND created >= ? AND created <= ? AND (CAST(? AS TEXT) IS NULL OR key_id = ?)
      GROUP BY key_id, kind ORDER BY key_id, kind`, [tenant, since, until, keyId ?? null, keyId ?? null]);
  }
}

/**
 * Who holds a request reservation: this machine (a 31-bit tag of its host name) and this
 * process's pid, in one integer (tag × 2^22 + pid; pids stay below 2^22), so a replica
 * releasing orphans after a restart judges only the holders of its own machine.
 */
const PID_SPAN = 2 ** 22;
const HOST_TAG = 1 + (createHash("sha256").update(hostname()).digest().readUInt32BE(0) % (2 ** 31 - 1));
const holderId = (): number => HOST_TAG * PID_SPAN + process.pid;
