/**
 * /v1/files: JSONL datasets for fine-tuning. An upload is validated before it is stored:
 * every line a JSON object {text, label} or {text_a, text_b, label}, at least 2 labels and
 * 2 examples per label; errors name the line. Files belong to the uploading key's tenant.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { parseJsonlRows, rowsToExamples } from "../../tasks/task.js";
import { writeFileAtomic } from "../../io/atomic.js";
import type { FileEntry, Registry } from "../../registry/index.js";
import { apiError } from "../errors.js";
import { type Part, MultipartError, boundaryOf, parseMultipart } from "../multipart.js";

export const fileObject = (f: FileEntry) => ({
  id: f.id, object: "file", bytes: f.bytes, created_at: f.created, filename: f.filename, purpose: f.purpose,
  status: "processed", status_details: null, expires_at: null, rows: f.rows, labels: f.labels,
});

/** The examples of a JSONL upload, or an invalid_file error naming the line. */
export function validateJsonl(text: string, filename: string): { rows: number; labels: string[] } {
  let examples;
  try {
    examples = rowsToExamples(parseJsonlRows(text, filename), filename);
  } catch (e) {
    throw apiError("invalid_file", (e as Error).message, "file");
  }
  const counts = new Map<string, number>();
  for (const e of examples) counts.set(e.label, (counts.get(e.label) ?? 0) + 1);
  if (counts.size < 2) throw apiError("invalid_file", `${filename}: a fine-tuning file needs at least 2 labels, found ${JSON.stringify([...counts.keys()])}`, "file");
  for (const [label, n] of counts) if (n < 2) throw apiError("invalid_file", `${filename}: label ${JSON.stringify(label)} has ${n} example; each label needs at least 2`, "file");
  return { rows: examples.length, labels: [...counts.keys()].sort() };
}

export function fileRoutes(deps: { registry: Registry; dataDir: string; maxFileBytes: number }) {
  const { registry } = deps;
  return async (app: FastifyInstance): Promise<void> => {
    app.addContentTypeParser("multipart/form-data", { parseAs: "buffer", bodyLimit: deps.maxFileBytes }, (req, body, done) => {
      try {
        done(null, parseMultipart(body as Buffer, boundaryOf(req.headers["content-type"])));
      } catch (e) {
        done(e instanceof MultipartError ? apiError("invalid_value", `Could not read the multipart body: ${e.message}`) : (e as Error), undefined);
      }
    });

    app.post("/v1/files", { bodyLimit: deps.maxFileBytes }, async (req) => {
      if (!Array.isArray(req.body)) throw apiError("invalid_value", "Upload files as multipart/form-data with fields 'file' and 'purpose'.", "file");
      const parts = req.body as Part[];
      const purpose = parts.find((p) => p.name === "purpose")?.data.toString("utf8");
      const file = parts.find((p) => p.name === "file");
      if (purpose === undefined) throw apiError("missing_required_parameter", "Missing required parameter: 'purpose'.", "purpose");
      if (purpose !== "fine-tune") throw apiError("invalid_value", `Invalid value for 'purpose': ${JSON.stringify(purpose)}; this server accepts 'fine-tune'.`, "purpose");
      if (file === undefined) throw apiError("missing_required_parameter", "Missing required parameter: 'file'.", "file");
      const filename = file.filename ?? "upload.jsonl";
      if (!/\.jsonl$/i.test(filename)) throw apiError("invalid_file", `Invalid file format for fine-tuning: ${JSON.stringify(filename)}; expected a .jsonl file.`, "file");
      const { rows, labels } = validateJsonl(file.data.toString("utf8"), filename);
      const dir = join(deps.dataDir, "files", req.apiKey.tenant);
      mkdirSync(dir, { recursive: true });
      const path = join(dir, `${randomBytes(12).toString("hex")}.jsonl`);
      writeFileAtomic(path, file.data);
      const entry = registry.jobs.addFile({
        tenant: req.apiKey.tenant, filename, purpose, bytes: file.data.length, path, rows, labels,
        sha256: createHash("sha256").update(file.data).digest("hex"),
      });
      return fileObject(entry);
    });

    const own = (tenant: string, id: string): FileEntry => {
      const f = registry.jobs.file(id);
      if (f === undefined || f.tenant !== tenant) throw apiError("not_found", `No such File object: ${id}`, "id");
      return f;
    };
    app.get("/v1/files", async (req) => ({ object: "list", data: registry.jobs.files(req.apiKey.tenant).map(fileObject), has_more: false }));
    app.get<{ Params: { id: string } }>("/v1/files/:id", async (req) => fileObject(own(req.apiKey.tenant, req.params.id)));
    app.delete<{ Params: { id: string } }>("/v1/files/:id", async (req) => {
      const f = own(req.apiKey.tenant, req.params.id);
      const { usedBy } = registry.jobs.deleteFile(f.id);
      if (usedBy !== null) throw apiError("invalid_value", `File ${f.id} is the training file of fine-tuning job ${usedBy}; it is kept with the job's record.`, "file_id");
      rmSync(f.path, { force: true });
      return { id: f.id, object: "file", deleted: true };
    });
    app.get<{ Params: { id: string } }>("/v1/files/:id/content", async (req, reply) => {
      const f = own(req.apiKey.tenant, req.params.id);
      return reply.type("application/jsonl").send(readFileSync(f.path));
    });
  };
}
