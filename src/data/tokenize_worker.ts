/**
 * A tokenizer thread for corpus preparation (pool.ts): rebuilds the tokenizer from its recipe,
 * answers each batch of texts and files with their ids packed into one typed array (transferred,
 * not copied), the number of ids and UTF-8 bytes of each, and each batch of files to scan with
 * their digests (scan.ts scanFile).
 */
import { parentPort, workerData } from "node:worker_threads";
import { HeapGovernor } from "./heap.js";
import { encodeEntries, PlainError, scanFiles, tokenizerFromRecipe, type WorkerReply, type WorkerRequest, type WorkerSetup } from "./pool.js";

const setup = workerData as WorkerSetup;
const tokenizer = tokenizerFromRecipe(setup.recipe);
const port = parentPort!;

// A full collection whenever the heap and its buffers have grown by the slack (heap.ts).
const governor = new HeapGovernor(setup.heapSlackBytes);
const check = (): void => governor.check();
port.postMessage({ ready: tokenizer.fingerprint() });
// Requests are answered one at a time, in order (a file read is awaited before the next request starts).
let queue: Promise<void> = Promise.resolve();
port.on("message", (req: WorkerRequest) => {
  queue = queue.then(() => answer(req));
});

async function answer(req: WorkerRequest): Promise<void> {
  try {
    if ("heap" in req) {
      governor.check();
      port.postMessage({ id: req.id, peak: governor.peak } satisfies WorkerReply);
      return;
    }
    if ("scan" in req) {
      const reply: WorkerReply = { id: req.id, scans: await scanFiles(req.scan, req.read, check) };
      port.postMessage(reply);
    } else {
      const { ids, counts, bytes } = await encodeEntries(tokenizer, req.texts, setup.dtype, check, req.spare);
      const reply: WorkerReply = { id: req.id, ids, counts, bytes };
      port.postMessage(reply, [ids.buffer as ArrayBuffer, counts.buffer as ArrayBuffer, bytes.buffer as ArrayBuffer]);  // their buffers are their own (fresh, or a spare the caller gave back)
    }
    governor.check();
  } catch (e) {
    const reply: WorkerReply = e instanceof PlainError ? { id: req.id, error: e.message, plain: true } : { id: req.id, error: (e as Error).stack ?? String(e) };
    port.postMessage(reply);
  }
}
