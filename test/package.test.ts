// Plinth as a dependency of another project: `npm pack` (its prepack brings dist/ up to date),
// the tarball holds what an install needs (compiled JavaScript with types, the native sources and
// binding.gyp, the dashboard and probe suites) and nothing of the tests; `npm install <tarball>`
// into a new project; then `import("plinth")` by name goes through package.json's exports, the
// public types compile in a TypeScript consumer, and README's library example runs for real.
//
// To stay quick the install is offline and skips install scripts: the project's dependencies are
// linked in from this checkout's node_modules before `npm install` (so npm finds them satisfied),
// and the addon this checkout already built is copied to the installed package's
// build/Release/ (where src/native/index.ts looks), instead of a 1-2 minute node-gyp rebuild.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync, type SpawnSyncOptions } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** README's library example; the test runs README's own copy once README has the section. */
const LIBRARY_EXAMPLE = `import { pretrain, loadGPT, tokenizerFor, generate } from "plinth";

// A tokenizer and a tiny GPT trained on Moby Dick (an npm package ships the text) for 300 steps.
const run = await pretrain({ data: ["moby-dick"], size: "tiny", steps: 300, vocab: 512, outDir: "runs/moby", quiet: true });
console.log(\`validation loss \${run.result.valLoss.toFixed(3)} nats/token after \${run.result.steps} steps (unigram \${run.unigram.toFixed(3)})\`);

// Read back from its folder (config.json, model.safetensors, tokenizer.json) and continue a prompt.
const model = loadGPT("runs/moby");
const tokenizer = tokenizerFor("runs/moby");
const prompt = "Call me Ishmael. ";
const { tokens } = generate(model, Array.from(tokenizer.encode(prompt)), { maxNewTokens: 40, temperature: 0.8, seed: 1 });
console.log(prompt + tokenizer.decode(tokens));
`;

const LIBRARY_HEADING = "## Plinth as a library";

/** The first ```js block under README's library heading, else the draft above. */
function readmeExample(): { code: string; from: string } {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const at = readme.indexOf(`\n${LIBRARY_HEADING}\n`);
  if (at < 0) return { code: LIBRARY_EXAMPLE, from: "test/package.test.ts (README has no library section yet)" };
  const block = /```(?:js|javascript|ts|mjs)\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(block !== null, `README's "${LIBRARY_HEADING}" section has no code block`);
  return { code: block[1], from: "README.md" };
}

const TYPED_CONSUMER = `import { pretrain, generate, loadGPT, tokenizerFor, runAdaptation, kShotCurve, createServer, prepareCorpus, Trainer, type PretrainOptions, type PretrainRun, type AdaptSpec, type GPTConfig } from "plinth";
const options: PretrainOptions = { data: ["moby-dick"], size: "tiny", steps: 10, outDir: "runs/x" };
const run: Promise<PretrainRun> = pretrain(options);
const spec: AdaptSpec = { base: "runs/x", task: "sentiment", method: "lora", labelsPerClass: 8, out: "runs/x-lora" };
const config: Pick<GPTConfig, "n_embd"> = loadGPT("runs/x").config;
const ids: number[] = generate(loadGPT("runs/x"), Array.from(tokenizerFor("runs/x").encode("hi")), { maxNewTokens: 1 }).tokens;
// @ts-expect-error: the options are typed
pretrain({ outDir: "runs/x", steps: "ten" });
export { run, spec, config, ids, runAdaptation, kShotCurve, createServer, prepareCorpus, Trainer };
`;

function run(cmd: string, args: string[], opts: SpawnSyncOptions & { cwd: string }) {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 300_000, ...opts });
  assert.equal(r.status, 0, `${cmd} ${args.join(" ")} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  return { stdout: String(r.stdout), stderr: String(r.stderr) };
}

test("npm pack, install the tarball in a new project, import('plinth') by name, typed, and run the README example", () => {
  const tmp = mkdtempSync(join(tmpdir(), "plinth-package-"));
  try {
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string; dependencies: Record<string, string> };

    // The tarball: what an install needs, nothing of the tests or local builds.
    const packed = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", tmp], { cwd: root }).stdout) as { filename: string; files: { path: string }[] }[];
    const files = new Set(packed[0].files.map((f) => f.path));
    for (const f of ["package.json", "dist/src/index.js", "dist/src/index.d.ts", "dist/src/cli/main.js", "dist/src/native/index.js", "native/src/addon.cpp",
      "native/src/kernels.h", "binding.gyp", "scripts/setup.mjs", "web/index.html", "probes/sentiment.json"]) {
      assert.ok(files.has(f), `the tarball lacks ${f}`);
    }
    for (const f of files) assert.ok(!/^(test|dist\/test|dist\/bench|build|node_modules|runs)\//.test(f), `the tarball should not hold ${f}`);
    for (const f of files) {
      const m = /^dist\/(src\/.*)\.js$/.exec(f);
      if (m !== null) assert.ok(existsSync(join(root, `${m[1]}.ts`)), `${f} has no source (a stale output of a moved module)`);
    }
    const tarball = join(tmp, packed[0].filename);

    // A new project; npm installs the tarball, its dependencies already linked from this checkout.
    const app = join(tmp, "app");
    mkdirSync(join(app, "node_modules"), { recursive: true });
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "plinth-consumer", version: "1.0.0", private: true, type: "module" }));
    for (const dep of Object.keys(pkg.dependencies)) {
      mkdirSync(dirname(join(app, "node_modules", dep)), { recursive: true });
      symlinkSync(join(root, "node_modules", dep), join(app, "node_modules", dep), "dir");
    }
    run("npm", ["install", "--offline", "--ignore-scripts", "--no-audit", "--no-fund", "--no-package-lock", tarball], { cwd: app });
    const installed = join(app, "node_modules", "plinth");
    assert.equal(JSON.parse(readFileSync(join(installed, "package.json"), "utf8")).version, pkg.version);
    mkdirSync(join(installed, "build", "Release"), { recursive: true });
    copyFileSync(join(root, "build", "Release", "plinth_native.node"), join(installed, "build", "Release", "plinth_native.node"));

    // By name, through exports: the entry resolves into the installed package; internals are not exported.
    const probe = `const url = import.meta.resolve("plinth");
const m = await import("plinth");
let deep = "exported";
try { await import("plinth/dist/src/cli/main.js"); } catch (e) { deep = e.code; }
console.log(JSON.stringify({ url, deep, names: Object.keys(m) }));`;
    const seen = JSON.parse(run(process.execPath, ["--input-type=module", "-e", probe], { cwd: app }).stdout) as { url: string; deep: string; names: string[] };
    assert.equal(fileURLToPath(seen.url), join(installed, "dist", "src", "index.js"));
    assert.equal(seen.deep, "ERR_PACKAGE_PATH_NOT_EXPORTED");
    for (const name of ["pretrain", "Trainer", "prepareCorpus", "trainBPE", "loadGPT", "generate", "runAdaptation", "loadAdapted", "kShotCurve", "perplexity", "createServer", "Registry"]) {
      assert.ok(seen.names.includes(name), `plinth does not export ${name}`);
    }

    // The types: a strict TypeScript consumer compiles against the installed declarations.
    writeFileSync(join(app, "consumer.ts"), TYPED_CONSUMER);
    writeFileSync(join(app, "tsconfig.json"), JSON.stringify({
      compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true, skipLibCheck: true, types: ["node"], typeRoots: [join(root, "node_modules", "@types")] },
      files: ["consumer.ts"],
    }));
    run(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", app], { cwd: app });

    // README's example, as a user would run it.
    const example = readmeExample();
    writeFileSync(join(app, "example.mjs"), example.code);
    const out = run(process.execPath, ["example.mjs"], { cwd: app }).stdout;
    assert.match(out, /validation loss \d+\.\d+ nats\/token after 300 steps \(unigram \d+\.\d+\)/, `${example.from}:\n${out}`);
    assert.match(out, /\nCall me Ishmael\. [\s\S]*[a-z]/);
    assert.ok(existsSync(join(app, "runs", "moby", "model.safetensors")));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
