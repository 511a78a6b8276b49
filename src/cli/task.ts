/** `plinth task`: list and inspect labeled tasks, and export the unlabeled text of a split (for pretraining a base on one's own data). */
import { parseArgs } from "node:util";
import { writeFileSync } from "node:fs";
import { resolveTask } from "../tasks/resolve.js";
import { BUILTIN_TASKS } from "../tasks/builtin.js";
import { exampleText, type Task } from "../tasks/task.js";
import { UsageError } from "./args.js";

export const taskHelp = `plinth task — labeled tasks: list, show, export unlabeled text

Usage: plinth task list
       plinth task show <name|file>
       plinth task export-text --tasks sentiment,spam,sotu-party [--split train] [--max-chars N] --out text.jsonl

  export-text writes one {"text"} line per example of the split, without labels: the text a base may
  be pretrained on without ever seeing the test split (pretrain --data text.jsonl).

Example:
  plinth task export-text --tasks sentiment,spam,sotu-party --out runs/task-text.jsonl`;

function describe(t: Task): string {
  const count = (xs: Task["train"], l: string): number => xs.filter((e) => e.label === l).length;
  return `${t.name}: labels ${t.labels.join(", ")}; train ${t.train.length} (${t.labels.map((l) => `${l} ${count(t.train, l)}`).join(", ")}), test ${t.test.length} (${t.labels.map((l) => `${l} ${count(t.test, l)}`).join(", ")})`;
}

export function runTask(argv: string[]): void {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === "--help" || sub === "-h") return void console.log(taskHelp);
  if (sub === "list") {
    for (const name of Object.keys(BUILTIN_TASKS)) console.log(describe(resolveTask(name)));
    return;
  }
  if (sub === "show") {
    if (rest[0] === undefined) throw new UsageError("plinth task show <name|file>");
    const t = resolveTask(rest[0]);
    console.log(describe(t));
    for (const e of t.train.slice(0, 3)) console.log(`  [${e.label}] ${exampleText(e).slice(0, 120).replace(/\s+/g, " ")}`);
    return;
  }
  if (sub === "export-text") {
    const { values } = parseArgs({ args: rest, options: { tasks: { type: "string" }, split: { type: "string" }, out: { type: "string" }, "max-chars": { type: "string" } } });
    const maxChars = values["max-chars"] === undefined ? Infinity : Number(values["max-chars"]);
    if (!(maxChars >= 1)) throw new UsageError(`--max-chars must be a positive number, got "${values["max-chars"]}"`);
    if (values.tasks === undefined || values.out === undefined) throw new UsageError("--tasks and --out are required");
    const split = values.split ?? "train";
    if (split !== "train" && split !== "test") throw new UsageError(`--split must be train or test, got "${split}"`);
    const lines: string[] = [];
    for (const name of values.tasks.split(",").map((s) => s.trim()).filter((s) => s !== "")) {
      const t = resolveTask(name);
      for (const e of t[split]) lines.push(JSON.stringify({ text: exampleText(e).slice(0, maxChars) }));
      console.log(`${t.name}: ${t[split].length} ${split} texts`);
    }
    writeFileSync(values.out, lines.join("\n") + "\n");
    console.log(`wrote ${lines.length} texts to ${values.out}`);
    return;
  }
  throw new UsageError(`unknown subcommand "${sub}"; use list, show or export-text`);
}
