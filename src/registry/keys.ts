/**
 * API keys and usage. A key is shown once when created ("pk-" + 32 random bytes, base64url);
 * the registry keeps only its sha256. Each key belongs to a tenant and may carry a request
 * rate limit (per minute) and a token quota (prompt + completion + training tokens).
 */
import { createHash, randomBytes } from "node:crypto";
import { type Database, now } from "./db.js";

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

export interface UsageRecord {
  keyId: string;
  tenant: string;
  kind: "completion" | "chat" | "embedding" | "classification" | "fine_tuning";
  model: string;
  promptTokens?: number;
  completionTokens?: number;
  trainingTokens?: number;
  computeSeconds?: number;
}

export interface UsageTotals {
  key_id: string;
  kind: string;
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  training_tokens: number;
  compute_seconds: number;
}

interface KeyRow {
  id: string; tenant: string; name: string; prefix: string; rpm: number | null; token_quota: number | null; created: number; revoked: number;
}

const hashKey = (key: string): string => createHash("sha256").update(key).digest("hex");
const toKey = (r: KeyRow): ApiKey => ({
  id: r.id, tenant: r.tenant, name: r.name, prefix: r.prefix, rpm: r.rpm, tokenQuota: r.token_quota, created: r.created, revoked: r.revoked !== 0,
});

export class KeyStore {
  constructor(private readonly db: Database) {}

  /** Creates a key; the returned `secret` is the only copy of it. */
  create(tenant: string, { name = "default", rpm = null, tokenQuota = null }: { name?: string; rpm?: number | null; tokenQuota?: number | null } = {}): { key: ApiKey; secret: string } {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(tenant)) throw new Error(`keys.create: tenant ${JSON.stringify(tenant)} must be 1-64 characters of letters, digits, _ . -`);
    for (const [k, v] of [["rpm", rpm], ["tokenQuota", tokenQuota]] as const) {
      if (v !== null && !(Number.isInteger(v) && v > 0)) throw new Error(`keys.create: ${k} must be a positive integer or null, got ${v}`);
    }
    const secret = `pk-${randomBytes(32).toString("base64url")}`;
    const id = `key_${randomBytes(8).toString("hex")}`;
    this.db.prepare("INSERT INTO api_keys (id, tenant, name, hash, prefix, rpm, token_quota, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
      .run(id, tenant, name, hashKey(secret), secret.slice(0, 7), rpm, tokenQuota, now());
    return { key: this.get(id)!, secret };
  }

  get(id: string): ApiKey | undefined {
    const r = this.db.prepare<KeyRow>("SELECT * FROM api_keys WHERE id = ?").get(id);
    return r === undefined ? undefined : toKey(r);
  }

  /** The live key a secret belongs to, or undefined. */
  verify(secret: string): ApiKey | undefined {
    const r = this.db.prepare<KeyRow>("SELECT * FROM api_keys WHERE hash = ? AND revoked = 0").get(hashKey(secret));
    return r === undefined ? undefined : toKey(r);
  }

  list(tenant: string): ApiKey[] {
    return this.db.prepare<KeyRow>("SELECT * FROM api_keys WHERE tenant = ? ORDER BY created, id").all(tenant).map(toKey);
  }

  revoke(id: string): void {
    this.db.prepare("UPDATE api_keys SET revoked = 1 WHERE id = ?").run(id);
  }

  record(u: UsageRecord): void {
    this.db.prepare(`INSERT INTO usage (key_id, tenant, kind, model, prompt_tokens, completion_tokens, training_tokens, compute_seconds, created)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(u.keyId, u.tenant, u.kind, u.model, u.promptTokens ?? 0, u.completionTokens ?? 0, u.trainingTokens ?? 0, u.computeSeconds ?? 0, now());
  }

  /** Tokens a key has used in all (prompt + completion + training), for its quota. */
  tokensUsed(keyId: string): number {
    const r = this.db.prepare<{ n: number | null }>("SELECT SUM(prompt_tokens + completion_tokens + training_tokens) AS n FROM usage WHERE key_id = ?").get(keyId);
    return r?.n ?? 0;
  }

  /** Usage of a tenant's keys, summed per key and kind, between two unix times. */
  usage(tenant: string, { since = 0, until = Number.MAX_SAFE_INTEGER, keyId }: { since?: number; until?: number; keyId?: string } = {}): UsageTotals[] {
    return this.db.prepare<UsageTotals>(`SELECT key_id, kind, COUNT(*) AS requests, SUM(prompt_tokens) AS prompt_tokens,
        SUM(completion_tokens) AS completion_tokens, SUM(training_tokens) AS training_tokens, SUM(compute_seconds) AS compute_seconds
      FROM usage WHERE tenant = ? AND created >= ? AND created <= ? AND (? IS NULL OR key_id = ?)
      GROUP BY key_id, kind ORDER BY key_id, kind`).all(tenant, since, until, keyId ?? null, keyId ?? null);
  }
}
