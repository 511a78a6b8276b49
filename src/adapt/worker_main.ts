/**
 * The worker process behind startAdaptationWorker: waits for one "start" message, runs the
 * adaptation, reports progress (at most every 100 ms, and the last step), then its outcome or its
 * error, and exits. A "cancel" message aborts between training steps.
 */
import type { ParentMessage, WorkerMessage } from "./worker.js";
import { runAdaptation, type AdaptProgress } from "./run.js";

const send = (m: WorkerMessage): Promise<void> =>
  new Promise((resolve) => {
    if (process.send === undefined || !process.connected) return resolve();
    process.send(m, undefined, {}, () => resolve());
  });

if (process.send === undefined) {
  console.error("worker_main: this file runs as a child process of startAdaptationWorker (no IPC channel)");
  process.exit(2);
}

const controller = new AbortController();
let started = false;
let lastSent = 0;

process.on("message", (raw: unknown) => {
  const msg = raw as ParentMessage;
  if (msg.type === "cancel") {
    controller.abort();
    return;
  }
  if (msg.type !== "start" || started) return;
  started = true;
  const onProgress = (p: AdaptProgress): void => {
    const now = Date.now();
    if (now - lastSent < 100 && p.step !== p.total) return;
    lastSent = now;
    void send({ type: "progress", progress: p });
  };
  runAdaptation(msg.spec, { onProgress, signal: controller.signal })
    .then((outcome) => send({ type: "done", outcome }))
    .catch((e: unknown) => {
      const err = e instanceof Error ? e : new Error(String(e));
      return send({ type: "error", name: err.name, message: err.message });
    })
    .finally(() => process.exit(0));
});

process.on("disconnect", () => controller.abort());
