// A corpus preparation for the kill -9 test: prepares moby-dick into argv[2] with a small BPE,
// small shards and small batches; after its second checkpoint, once 20,000 more tokens are
// written, it prints "KILLME" and blocks, so that the parent kills it with shard data on disk
// past the last checkpoint.
import { prepareCorpus } from "../../src/data/prepare.js";
import { streamTestTokenizer } from "./stream_corpus.js";

const outDir = process.argv[2];
let checkpoints = 0, tokens = 0, tokensAtCheckpoint = 0;
await prepareCorpus({
  specs: ["moby-dick"], tokenizer: streamTestTokenizer(), outDir, shardTokens: 50_000, memoryMb: 1, threads: 2,
  onCheckpoint: () => {
    checkpoints++;
    tokensAtCheckpoint = tokens;
  },
  onProgress: (p) => {
    if (p.stage !== "tokenize") return;
    tokens = p.tokens;
    // Past the second shard, and 20,000 tokens past the last checkpoint: written, but not recorded.
    if (checkpoints < 2 || tokens - tokensAtCheckpoint < 20_000) return;
    process.stdout.write("KILLME\n");
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
  },
});
process.stdout.write("FINISHED\n");
