/**
 * Keys, rate limits and quotas. Every /v1 request carries `Authorization: Bearer <key>`; the
 * key (looked up by hash) names the tenant. A key may limit requests per minute (a sliding
 * window kept in memory) and tokens in all (prompt + completion + training). Over the rate
 * limit any request gets a 429; the token quota gates work only (quota.ts reserves each
 * request's worst case), never reads, so an owner can always see what used the quota up.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyRequest } from "fastify";
import type { ApiKey, Registry } from "../registry/index.js";
import { ApiError, apiError } from "./errors.js";
import { checkQuotaLeft } from "./quota.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The caller's key, set by the auth hook on /v1 routes. */
    apiKey: ApiKey;
  }
}

export class Gate {
  private readonly windows = new Map<string, number[]>();
  private lastPrune = Date.now();
  constructor(private readonly registry: Registry, private readonly adminSecret: string | null) {}

  /** Drops the request windows of keys with no request in the last minute (they hold nothing); runs at most once a minute. */
  private prune(now: number): void {
    for (const [id, w] of this.windows) if (w[w.length - 1] <= now - 60_000) this.windows.delete(id);
    this.lastPrune = now;
  }

  /** The key a request carries, checked against its rate limit, and for work (`work`) against its token quota. */
  async admit(req: FastifyRequest, { work = false }: { work?: boolean } = {}): Promise<ApiKey> {
    const secret = bearer(req);
    const key = await this.registry.keys.verify(secret);
    if (key === undefined) throw apiError("invalid_api_key", `Incorrect API key provided: ${secret.slice(0, 7)}${secret.length > 7 ? "…" : ""}. Create one with \`plinth keys create <tenant>\`.`);
    if (key.rpm !== null) {
      const now = Date.now();
      const w = (this.windows.get(key.id) ?? []).filter((t) => t > now - 60_000);
      if (w.length >= key.rpm) {
        const retry = Math.max(1, Math.ceil((w[0] + 60_000 - now) / 1000));
        throw new ApiError("rate_limit_exceeded", `Rate limit reached for key ${key.prefix}… on requests per minute: limit ${key.rpm}, used ${w.length}. Please try again in ${retry}s.`, null, { "retry-after": String(retry) });
      }
      w.push(now);
      this.windows.set(key.id, w);
      if (now - this.lastPrune >= 60_000) this.prune(now);
    }
    if (work) await checkQuotaLeft(this.registry, key);
    return key;
  }

  /** Admin routes (key creation, model registration) take the server's admin secret. */
  admin(req: FastifyRequest): void {
    if (this.adminSecret === null) throw apiError("admin_only", "This server has no admin key (start it with PLINTH_ADMIN_KEY=... or --admin-key-file <file>) so admin routes are off.");
    // Compared as SHA-256 digests in constant time: the admin key can create keys for any tenant.
    const digest = (v: string): Buffer => createHash("sha256").update(v).digest();
    if (!timingSafeEqual(digest(bearer(req)), digest(this.adminSecret))) throw apiError("admin_only", "This route needs the server's admin key.");
  }
}

function bearer(req: FastifyRequest): string {
  const h = req.headers.authorization;
  if (h === undefined || h === "") throw apiError("missing_api_key", "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.");
  const m = /^Bearer\s+(\S+)$/i.exec(h);
  if (m === null) throw apiError("invalid_api_key", "The Authorization header must be 'Bearer <key>'.");
  return m[1];
}
