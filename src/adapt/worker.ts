/**
 * Adaptations in a worker process, so that a server's event loop (or a harness collecting many
 * runs) stays responsive and each run's memory is its own. The child runs runAdaptation and
 * reports progress over IPC; cancel() asks it to stop between steps and kills it if it does not.
 *
 *     const job = startAdaptationWorker({ base: "runs/default", method: "lora", task: "sentiment", out: "runs/a" },
 *       { onProgress: (p) => console.log(p.step, p.loss) });
 *     const outcome = await job.result;     // rejects with the child's error (name and message kept)
 *     job.cancel();                         // rejects result with an AbortError
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { AdaptOutcome, AdaptProgress, AdaptSpec } from "./run.js";

export type WorkerMessage =
  | { type: "progress"; progress: AdaptProgress }
  | { type: "done"; outcome: AdaptOutcome }
  | { type: "error"; name: string; message: string };

export type ParentMessage = { type: "start"; spec: AdaptSpec } | { type: "cancel" };

export interface AdaptationWorker {
  readonly pid: number;
  readonly result: Promise<AdaptOutcome>;
  cancel(): void;
}

export class WorkerError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

const MAIN = fileURLToPath(new URL("./worker_main.js", import.meta.url));

export function startAdaptationWorker(spec: AdaptSpec, { onProgress, env, killAfterMs = 5000 }: { onProgress?: (p: AdaptProgress) => void; env?: NodeJS.ProcessEnv; killAfterMs?: number } = {}): AdaptationWorker {
  const child: ChildProcess = fork(MAIN, [], { stdio: ["ignore", "inherit", "inherit", "ipc"], env: env ?? process.env });
  let settled = false;
  let cancelled = false;
  const result = new Promise<AdaptOutcome>((resolve, reject) => {
    child.on("message", (raw: unknown) => {
      const msg = raw as WorkerMessage;
      if (msg.type === "progress") onProgress?.(msg.progress);
      else if (msg.type === "done") {
        settled = true;
        resolve(msg.outcome);
        child.disconnect();
      } else if (msg.type === "error") {
        settled = true;
        reject(new WorkerError(msg.name, msg.message));
        child.disconnect();
      }
    });
    child.on("error", (e) => {
      if (!settled) {
        settled = true;
        reject(e);
      }
    });
    child.on("exit", (code, signal) => {
      if (settled) return;
      settled = true;
      if (cancelled) reject(new WorkerError("AbortError", "the adaptation was cancelled"));
      else reject(new WorkerError("WorkerExit", `the adaptation worker exited (code ${code}, signal ${signal}) before it finished`));
    });
  });
  child.send({ type: "start", spec } satisfies ParentMessage);
  return {
    pid: child.pid ?? -1,
    result,
    cancel(): void {
      if (settled || cancelled) return;
      cancelled = true;
      if (child.connected) child.send({ type: "cancel" } satisfies ParentMessage);
      const timer = setTimeout(() => {
        if (!settled) child.kill("SIGKILL");
      }, killAfterMs);
      timer.unref();
    },
  };
}
