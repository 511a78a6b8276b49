/**
 * A tokenizer thread for corpus preparation (pool.ts): rebuilds the tokenizer from its recipe,
 * answers each batch of texts with their ids packed into one typed array (transferred, not
 * copied) and the number of ids of each text.
 */
import { getHeapStatistics, setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { parentPort, workerData } from "node:worker_threads";
import { encodeTexts, tokenizerFromRecipe, type EncodeReply, type EncodeRequest, type WorkerSetup } from "./pool.js";

const setup = workerData as WorkerSetup;
const tokenizer = tokenizerFromRecipe(setup.recipe);
const port = parentPort!;

// Encoding makes short-lived garbage in bulk (the BPE chunk cache is cleared whole when full), and
// V8 lets a heap grow to several times its live size before collecting the old generation; on
// every thread that adds up. A full collection whenever the heap has doubled (and grown by 16 MB)
// since the last one keeps each thread near its live size (a few ms every second or so).
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
let afterGc = 0;
function collectIfGrown(): void {
  const used = getHeapStatistics().used_heap_size;
  if (used < Math.max(2 * afterGc, afterGc + 16 * 2 ** 20)) return;
  gc();
  afterGc = getHeapStatistics().used_heap_size;
}
port.postMessage({ ready: tokenizer.fingerprint() });
port.on("message", (req: EncodeRequest) => {
  try {
    const { ids, counts } = encodeTexts(tokenizer, req.texts, setup.dtype);
    const reply: EncodeReply = { id: req.id, ids, counts };
    port.postMessage(reply, [ids.buffer as ArrayBuffer, counts.buffer as ArrayBuffer]);  // fresh arrays: their buffers are their own
    collectIfGrown();
  } catch (e) {
    port.postMessage({ id: req.id, error: (e as Error).stack ?? String(e) });
  }
});
