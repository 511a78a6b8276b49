/**
 * Probe suites for the inherited-defect audit: a file of inputs, each with an expected property.
 *
 *   label        {"id", "kind": "label", "text": "The film was not good.", "expect": "negative"}
 *                passes when the classifier predicts `expect` (negation, sarcasm, ...).
 *   invariance   {"id", "kind": "invariance", "texts": ["John loved it.", "Aisha loved it."], "tolerance": 0.1}
 *                passes when every text gets the same label and no label's probability moves by more
 *                than `tolerance` (default 0.1): swapping names, pronouns, places.
 *   avoid        {"id", "kind": "avoid", "prompt": "The nurse said that", "avoid": " she", "prefer": " they"}
 *                a language-model probe: passes when the body scores `prefer` above `avoid` after the
 *                prompt (an undesired completion); with a [MASK] in the prompt, a masked LM's cloze.
 * Any probe may be marked "blocking": true. A suite is a JSON object {"name", "task", "probes": [...]}
 * or a JSONL file of probes (one per line).
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { basename, extname, join } from "node:path";
import { fileURLToPath } from "node:url";

export type Probe =
  | { id: string; kind: "label"; text: string; expect: string; blocking: boolean; description?: string }
  | { id: string; kind: "invariance"; texts: string[]; tolerance: number; blocking: boolean; description?: string }
  | { id: string; kind: "avoid"; prompt: string; avoid: string; prefer: string; blocking: boolean; description?: string };

export interface ProbeSuite {
  name: string;
  /** The task whose labels the label/invariance probes use (a built-in name or a file), if any. */
  task?: string;
  probes: Probe[];
}

export class ProbeFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProbeFileError";
  }
}

function str(v: unknown): v is string {
  return typeof v === "string" && v !== "";
}

function parseProbe(raw: unknown, where: string): Probe {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new ProbeFileError(`${where}: a probe must be a JSON object, got ${JSON.stringify(raw)}`);
  const r = raw as Record<string, unknown>;
  if (!str(r.id)) throw new ProbeFileError(`${where}: the probe has no "id" (a non-empty string)`);
  const blocking = r.blocking === undefined ? false : r.blocking;
  if (typeof blocking !== "boolean") throw new ProbeFileError(`${where} (${r.id}): "blocking" must be true or false`);
  const description = typeof r.description === "string" ? r.description : undefined;
  switch (r.kind) {
    case "label":
      if (!str(r.text) || !str(r.expect)) throw new ProbeFileError(`${where} (${r.id}): a label probe needs "text" and "expect" (strings)`);
      return { id: r.id, kind: "label", text: r.text, expect: r.expect, blocking, description };
    case "invariance": {
      if (!Array.isArray(r.texts) || r.texts.length < 2 || !r.texts.every(str)) throw new ProbeFileError(`${where} (${r.id}): an invariance probe needs "texts": at least 2 strings`);
      const tolerance = r.tolerance === undefined ? 0.1 : r.tolerance;
      if (typeof tolerance !== "number" || !(tolerance >= 0 && tolerance <= 1)) throw new ProbeFileError(`${where} (${r.id}): "tolerance" must be a number in [0, 1]`);
      return { id: r.id, kind: "invariance", texts: r.texts as string[], tolerance, blocking, description };
    }
    case "avoid":
      if (!str(r.prompt) || !str(r.avoid) || !str(r.prefer)) throw new ProbeFileError(`${where} (${r.id}): an avoid probe needs "prompt", "avoid" and "prefer" (strings)`);
      return { id: r.id, kind: "avoid", prompt: r.prompt, avoid: r.avoid, prefer: r.prefer, blocking, description };
    default:
      throw new ProbeFileError(`${where} (${r.id}): unknown kind ${JSON.stringify(r.kind)}; kinds are label, invariance, avoid`);
  }
}

export function parseProbeSuite(text: string, source: string): ProbeSuite {
  const trimmed = text.trim();
  if (trimmed === "") throw new ProbeFileError(`${source}: the probe file is empty`);
  let suite: ProbeSuite;
  if (trimmed.startsWith("{") && !source.endsWith(".jsonl")) {
    let obj: unknown;
    try {
      obj = JSON.parse(trimmed);
    } catch (e) {
      throw new ProbeFileError(`${source}: not valid JSON: ${(e as Error).message}`);
    }
    const o = obj as Record<string, unknown>;
    if (!Array.isArray(o.probes)) throw new ProbeFileError(`${source}: expected {"name", "task", "probes": [...]}; there is no "probes" list`);
    suite = {
      name: str(o.name) ? o.name : basename(source, extname(source)),
      task: str(o.task) ? o.task : undefined,
      probes: o.probes.map((p, i) => parseProbe(p, `${source}: probes[${i}]`)),
    };
  } else {
    const probes: Probe[] = [];
    text.split("\n").forEach((line, i) => {
      if (line.trim() === "") return;
      let obj: unknown;
      try {
        obj = JSON.parse(line);
      } catch (e) {
        throw new ProbeFileError(`${source}:${i + 1}: not valid JSON: ${(e as Error).message}`);
      }
      probes.push(parseProbe(obj, `${source}:${i + 1}`));
    });
    suite = { name: basename(source, extname(source)), probes };
  }
  if (suite.probes.length === 0) throw new ProbeFileError(`${source}: the suite holds no probes`);
  const ids = new Set<string>();
  for (const p of suite.probes) {
    if (ids.has(p.id)) throw new ProbeFileError(`${source}: probe id ${JSON.stringify(p.id)} appears twice`);
    ids.add(p.id);
  }
  return suite;
}

export function readProbeSuite(path: string): ProbeSuite {
  if (!existsSync(path)) throw new ProbeFileError(`probe file ${path} does not exist`);
  const buf = readFileSync(path);
  if (buf.includes(0)) throw new ProbeFileError(`${path}: binary data (a NUL byte); a probe file is JSON or JSONL text`);
  return parseProbeSuite(buf.toString("utf8"), path);
}

/** The probe suites shipped in the package's probes/ folder (from dist/src/eval or src/eval). */
export function probesDir(): string {
  for (const up of ["../../../probes", "../../probes"]) {
    const dir = fileURLToPath(new URL(up, import.meta.url));
    if (existsSync(dir)) return dir;
  }
  return fileURLToPath(new URL("../../../probes", import.meta.url));
}

/** A shipped suite's file by name (letters, digits, _ and -); "" for a name that is not one. */
export const suitePath = (name: string): string => /^[A-Za-z0-9_-]{1,64}$/.test(name) ? join(probesDir(), `${name}.json`) : "";

/** The names of the shipped suites. */
export const listSuites = (): string[] => existsSync(probesDir()) ? readdirSync(probesDir()).filter((f) => f.endsWith(".json")).map((f) => f.slice(0, -5)) : [];
