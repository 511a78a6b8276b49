/**
 * The layering check (`npm run check:layers`, run by .ci/run before the tests).
 *
 * Dependencies run one way; each layer knows only the ones below it (DESIGN.md):
 *
 *     native → tensor → nn/optim → models → data/train → tasks → adapt/eval → registry → serve/cli/web
 *
 * Where the folders DESIGN.md's line does not name sit, and why:
 *   src/native     the bottom: the typed seam over the C++ addon; imports nothing in src/.
 *   src/io         beside native: files, JSON and safetensors with no tensors; anything may use it.
 *   src/tokenizer  beside tensor: byte-level BPE needs only io, and every layer above that reads text
 *                  (models' loaders, data, tasks, serve) may use it.
 *   src/interop    beside data/train: Hugging Face / ONNX / GGUF conversion of model folders; it reads
 *                  models and tokenizers, and only cli (and the package index) call it.
 *   src/registry   between adapt/eval and serve/cli, as DESIGN.md has it (it reads adapter manifests).
 *   src/index.ts   the package's public entry: it may re-export any layer, and nothing in src/ imports it.
 *   bench/, test/, scripts/  consumers on top: they may import any of src/, src/ never imports them.
 *   web/           the dashboard runs in the browser and talks to the server over HTTP only: it imports
 *                  nothing outside web/, and nothing imports it (serve/routes/web.ts reads its files).
 *
 * Within one layer, folders may import each other in one direction only: a cycle between two
 * folders is an error (rule no-folder-cycles). Two same-layer directions are fixed outright:
 * eval builds on adapt (never the reverse) and cli builds on serve (never the reverse). Inside
 * src/serve, only app.ts (which mounts them) imports the route modules.
 */
const LAYERS = [
  ["native", "io"],
  ["tensor", "tokenizer"],
  ["nn", "optim"],
  ["models"],
  ["data", "train", "interop"],
  ["tasks"],
  ["adapt", "eval"],
  ["registry"],
  ["serve", "cli"],
];

const folders = (names) => `^src/(${names.join("|")})/`;

const layerRules = LAYERS.slice(0, -1).map((layer, i) => ({
  name: `layer-${layer.join("-")}`,
  severity: "error",
  comment: `${layer.join("/")} may import only ${LAYERS.slice(0, i).flat().join(", ") || "nothing in src/"} (and ${layer.join("/")}); ` +
    `it must not import the layers above it: ${LAYERS.slice(i + 1).flat().join(", ")}.`,
  from: { path: folders(layer) },
  to: { path: [folders(LAYERS.slice(i + 1).flat()), "^src/index\\.ts$"] },
}));

/** @type {import("dependency-cruiser").IConfiguration} */
module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: "adapt-below-eval",
      severity: "error",
      comment: "Adaptation never imports evaluation: task data and metrics live in src/tasks/, below both.",
      from: { path: "^src/adapt/" },
      to: { path: "^src/eval/" },
    },
    {
      name: "serve-below-cli",
      severity: "error",
      comment: "The server never imports the command line: pipelines the server needs live in the layers below (models, data, train, eval).",
      from: { path: "^src/serve/" },
      to: { path: "^src/cli/" },
    },
    {
      name: "routes-on-top-of-serve",
      severity: "error",
      comment: "Only src/serve/app.ts mounts route modules; what other serve modules (the job worker, the host) need lives below the routes.",
      from: { path: "^src/serve/", pathNot: ["^src/serve/routes/", "^src/serve/app\\.ts$"] },
      to: { path: "^src/serve/routes/" },
    },
    {
      name: "no-folder-cycles",
      severity: "error",
      comment: "Two folders import each other (directly or through others): pick the direction and move the shared piece below both.",
      scope: "folder",
      from: { path: "^src/" },
      to: { circular: true },
    },
    {
      name: "src-not-consumers",
      severity: "error",
      comment: "src/ is the library: it never imports the tests, benchmarks, scripts or the dashboard.",
      from: { path: "^src/" },
      to: { path: "^(test|bench|scripts|web)/" },
    },
    {
      name: "web-over-http-only",
      severity: "error",
      comment: "The dashboard runs in the browser and reaches the server over HTTP: it imports nothing outside web/.",
      from: { path: "^web/" },
      to: { pathNot: "^web/" },
    },
    {
      name: "not-to-unresolvable",
      severity: "error",
      comment: "An import that does not resolve: a typo, or a file that moved without its importers.",
      from: { path: "^(src|bench|web)/" },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "(^|/)(node_modules|dist|build)/" },
    // Type-only imports count: a layer that names another layer's types depends on it.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
};
