/**
 * /v1/files: JSONL datasets for fine-tuning. An upload is validated before it is stored:
 * every line a JSON object {text, label} or {text_a, text_b, label}, at least 2 labels and
 * 2 examples per label; errors name the line. Files belong to the uploading key's tenant; their
 * bytes go to the artifact store, addressed by content (the same bytes uploaded twice are one blob,
 * removed when the last file naming it is deleted).
 */
import { readFileSync, rmSync } from "node:fs";
import type { FastifyInstance } from "fastify";
import { parseJsonlRows, rowsToExamples } from "../../tasks/task.js";
import { isGenerativeJsonl, parseGenerativeJsonl } from "../../tasks/chat.js";
import type { ArtifactStore, FileEntry, Registry } from "../../registry/index.js";
import { apiError } from "../errors.js";
import { type Part, MultipartError, boundaryOf, parseMultipart } from "../multipart.js";
import { q } from "../params.js";

export const fileObject = (f: FileEntry) => ({
  id: f.id, object: "file", bytes: f.bytes, created_at: f.created, filename: f.filename, purpose: f.purpose,
  status: "processed", status_details: null, expires_at: null, rows: f.rows, labels: f.labels,
});

/** The examples of a JSONL upload, or an invalid_file error naming the line. */
export function validateJsonl(text: string, filename: string): { rows: number; labels: string[] } {
  // A chat or prompt/completion file (generative fine-tuning) has no labels.
  if (isGenerativeJsonl(text)) {
    try {
      return { rows: parseGenerativeJsonl(text, filename).records.length, labels: [] };
    } catch (e) {
      throw apiError("invalid_file", (e as Error).message, "file");
    }
  }
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

const FILES_QUERY = { purpose: q.str(64), limit: q.int(1, 10_000), after: q.str(64), order: q.oneOf("asc", "desc") };

/** An upload's name is shown back and listed, never used as a path: printable, at most 255 bytes. */
function checkFilename(name: string): void {
  if (name.length === 0) throw apiError("invalid_file", "The uploaded file has an empty filename; name it, e.g. train.jsonl.", "file");
  if (Buffer.byteLength(name) > 255) throw apiError("invalid_file", `The uploaded file's name is ${Buffer.byteLength(name)} bytes long; at most 255 are allowed.`, "file");
  if (/[\x00-\x1f\x7f]/.test(name)) throw apiError("invalid_file", `The uploaded file's name ${JSON.stringify(name)} contains a control character (NUL, newline, ...); rename the file.`, "file");
}

/** A file's bytes: its blob in the artifact store, or (a file uploaded before the store) the path it was written to. */
export async function fileBytes(artifacts: ArtifactStore, f: FileEntry): Promise<Buffer> {
  return (await artifacts.has(f.sha256)) ? await artifacts.get(f.sha256) : readFileSync(f.path);
}

export function fileRoutes(deps: { registry: Registry; artifacts: ArtifactStore; maxFileBytes: number }) {
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
      checkFilename(filename);
      if (!/\.jsonl$/i.test(filename)) throw apiError("invalid_file", `Invalid file format for fine-tuning: ${JSON.stringify(filename)}; expected a .jsonl file.`, "file");
      // A UTF-8 byte-order mark (editors on Windows write one) is not part of the first line.
      if (file.data[0] === 0xef && file.data[1] === 0xbb && file.data[2] === 0xbf) file.data = file.data.subarray(3);
      const { rows, labels } = validateJsonl(file.data.toString("utf8"), filename);
      const { sha256 } = await deps.artifacts.put(file.data);
      const entry = await registry.jobs.addFile({
        tenant: req.apiKey.tenant, filename, purpose, bytes: file.data.length, path: await deps.artifacts.localPath(sha256), rows, labels, sha256,
      });
      // Stored again after the record: a delete of another file with these bytes that removed the
      // blob between the two steps (it saw no record naming it yet) cannot leave this one without it.
      await deps.artifacts.put(file.data);
      return fileObject(entry);
    });

    const own = async (tenant: string, id: string): Promise<FileEntry> => {
      const f = await registry.jobs.file(id);
      if (f === undefined || f.tenant !== tenant) throw apiError("not_found", `No such File object: ${id}`, "id");
      return f;
    };
    app.get<{ Querystring: { purpose?: string; limit?: number; after?: string; order?: "asc" | "desc" } }>("/v1/files", { config: { query: FILES_QUERY } }, async (req) => {
      const { purpose, limit = 10_000, after, order = "desc" } = req.query;
      let files = (await registry.jobs.files(req.apiKey.tenant)).filter((f) => purpose === undefined || f.purpose === purpose);  // newest first
      if (order === "asc") files = files.reverse();
      if (after !== undefined) {
        const at = files.findIndex((f) => f.id === after);
        if (at < 0) throw apiError("invalid_value", `Unknown cursor after=${JSON.stringify(after)}: expected a file id of yours from an earlier page.`, "after");
        files = files.slice(at + 1);
      }
      return { object: "list", data: files.slice(0, limit).map(fileObject), has_more: files.length > limit };
    });
    app.get<{ Params: { id: string } }>("/v1/files/:id", async (req) => fileObject(await own(req.apiKey.tenant, req.params.id)));
    app.delete<{ Params: { id: string } }>("/v1/files/:id", async (req) => {
      const f = await own(req.apiKey.tenant, req.params.id);
      const { usedBy, shared } = await registry.jobs.deleteFile(f.id);
      if (usedBy !== null) throw apiError("invalid_value", `File ${f.id} is the training file of fine-tuning job ${usedBy}; it is kept with the job's record.`, "file_id");
      if (!shared) {
        if (await deps.artifacts.has(f.sha256)) await deps.artifacts.remove(f.sha256);
        else rmSync(f.path, { force: true });
      }
      return { id: f.id, object: "file", deleted: true };
    });
    app.get<{ Params: { id: string } }>("/v1/files/:id/content", async (req, reply) => {
      const f = await own(req.apiKey.tenant, req.params.id);
      return reply.type("application/jsonl").send(await fileBytes(deps.artifacts, f));
    });
  };
}
