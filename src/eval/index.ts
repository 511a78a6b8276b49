/**
 * Evaluation: perplexity, the k-shot harness with its from-scratch baseline, its reports, the
 * inherited-defect audit with its probe suites, and CLIP's zero-shot, retrieval and probe
 * scores. The tasks and metrics they score with live below adaptation, in src/tasks/.
 *
 *     perplexity(gpt, tok, texts);                    // { loss, perplexity, bitsPerByte, tokens }
 *     const curve = await kShotCurve({ base: "runs/default", task: "sentiment", methods: ["probe", "lora", "scratch"], ks: [4, 32], seeds: 3 });
 *     writeCurve("runs/eval/sentiment", curve);
 *     runAudit({ base: "runs/default", adapters: ["runs/adapters/sentiment-lora"], suite: readProbeSuite("probes/sentiment.json") });
 *     zeroShot(clip, captions, imageFeatures(clip, test), labels, templates, gold);   // CLIP: also retrieval(), imageLinearProbe()
 *     const run = await pretrainContrastive({ size: "tiny", outDir: "runs/clip", steps: 500, ... });   // run.heldOut
 */
export * from "./perplexity.js";
export * from "./harness.js";
export * from "./report.js";
export * from "./probes.js";
export * from "./audit.js";
export * from "./audit_report.js";
export * from "./clip.js";
export * from "./clip_images.js";
export * from "./clip_run.js";
export { autoCandidates, crossValidate, foldCount, pickMethod, runAuto, stratifiedFolds } from "./auto.js";
export type { AutoChoice, AutoOutcome, AutoSpec } from "./auto.js";
export { runSuite } from "./suite.js";
export type { SuiteResult, SuiteSpec } from "./suite.js";
export { headlineGap, suiteGapSvg, suiteSummary, suiteTable, writeSuite } from "./suite_report.js";
