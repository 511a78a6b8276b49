/**
 * Keys, rate limits and quotas. Every /v1 request carries `Authorization: Bearer <key>`; the
 * key (looked up by hash) names the tenant. A key may limit requests per minute (a sliding
 * window kept in the registry, so one limit holds across replicas) and tokens in all (prompt + completion + training). Over the rate
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
  constructor(private readonly registry: Registry, private readonly adminSecret: string | null) {}

  /** The key a request carries, checked against its rate limit, and for work (`work`) against its token quota. */
  async admit(req: FastifyRequest, { work = false }: { work?: boolean } = {}): Promise<ApiKey> {
    const secret = bearer(req);
    const key = await this.registry.keys.verify(secret);
    if (key === undefined) throw apiError("invalid_api_key", `Incorrect API key provided: ${secret.slice(0, 7)}${secret.length > 7 ? "…" : ""}. Create one with \`plinth keys create <tenant>\`.`);
    if (key.rpm !== null) {
      const hit = await this.registry.keys.hit(key);
      if (!hit.allowed) {
        const retry = Math.max(1, Math.ceil(hit.retryMs / 1000));
        throw new ApiError("rate_limit_exceeded", `Rate limit reached for key ${key.prefix}… on requests per minute: limit ${key.rpm}, used ${hit.used}. Please try again in ${retry}s.`, null, { "retry-after": String(retry) });
      }
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
