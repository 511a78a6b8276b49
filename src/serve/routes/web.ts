/** The dashboard: static files from web/ at /dashboard (the page itself calls the /v1 API with the user's key). */
import { existsSync, readFileSync } from "node:fs";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance } from "fastify";
import { apiError } from "../errors.js";

const TYPES: Record<string, string> = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml" };

/** web/ at the repository root (from dist/src/serve/routes or src/serve/routes). */
export function webRoot(): string {
  for (const up of ["../../../../web", "../../../web"]) {
    const dir = fileURLToPath(new URL(up, import.meta.url));
    if (existsSync(join(dir, "index.html"))) return dir;
  }
  throw new Error("dashboard: web/index.html not found beside the package");
}

/**
 * The dashboard's pages hold a tenant's key in memory: they load only their own scripts and
 * styles, talk only to this server, and cannot be framed by another site (clickjacking). Style
 * attributes stay allowed (the usage meters set their bar widths with one).
 */
export const DASHBOARD_HEADERS = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

export function webRoutes(root = webRoot()) {
  return async (app: FastifyInstance): Promise<void> => {
    // Registered as its own plugin, this hook covers the web routes only (the API's JSON needs none of it).
    app.addHook("onSend", async (_req, reply, payload) => {
      void reply.headers(DASHBOARD_HEADERS);
      return payload;
    });
    app.get("/", async (_req, reply) => reply.redirect("/dashboard/"));
    app.get<{ Params: { "*": string } }>("/dashboard/*", async (req, reply) => {
      const rel = normalize(req.params["*"] || "index.html");
      if (rel.startsWith("..") || rel.includes("\0")) throw apiError("not_found", `No such dashboard file: ${req.params["*"]}`);
      const path = join(root, rel);
      if (!existsSync(path) || !(extname(path) in TYPES)) throw apiError("not_found", `No such dashboard file: ${rel}`);
      return reply.type(TYPES[extname(path)]).send(readFileSync(path));
    });
  };
}
