/**
 * Keeping a thread's heap near its live size while preparing a corpus. Encoding and reading make
 * short-lived garbage in bulk (strings, the BPE chunk cache cleared whole when full, id arrays
 * passed between threads), and V8 lets a heap and its array buffers grow to several times what is
 * live before it collects; on every thread that adds up. A full collection whenever the heap and
 * its array buffers have grown by `slackBytes` since the last one keeps each thread at its live
 * size plus that slack (a full collection of a heap this size takes a few ms).
 *
 * Also samples what a thread held at most (HeapPeak), for the preparation's statistics.
 */
import { getHeapStatistics, setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** The most a thread's V8 heap (committed), its array buffers and its live heap (after a collection) have held. */
export interface HeapPeak {
  heapBytes: number;
  externalBytes: number;
  liveBytes: number;
  /** Full collections the governor ran. */
  collections: number;
}

let gcFunction: (() => void) | null = null;
function fullGc(): void {
  if (gcFunction === null) {
    setFlagsFromString("--expose-gc");
    gcFunction = runInNewContext("gc") as () => void;
  }
  gcFunction();
}

export class HeapGovernor {
  readonly peak: HeapPeak = { heapBytes: 0, externalBytes: 0, liveBytes: 0, collections: 0 };
  private usedAfterGc = -1;
  /**
   * The least external memory seen since the last collection: array buffers found dead are freed
   * by a sweeper after the collection returns, so the level right after it is too high a baseline.
   */
  private externalFloor = Infinity;
  constructor(private readonly slackBytes: number) {}

  /** Samples the heap, and collects if it has grown by the slack since the last collection. */
  check(): void {
    const h = getHeapStatistics();
    this.note(h);
    if (this.usedAfterGc < 0) this.usedAfterGc = h.used_heap_size;
    this.externalFloor = Math.min(this.externalFloor, h.external_memory);
    if (h.used_heap_size - this.usedAfterGc + (h.external_memory - this.externalFloor) < this.slackBytes) return;
    fullGc();
    this.peak.collections++;
    const after = getHeapStatistics();
    this.usedAfterGc = after.used_heap_size;
    this.externalFloor = after.external_memory;
    this.peak.liveBytes = Math.max(this.peak.liveBytes, after.used_heap_size);
  }

  private note(h: ReturnType<typeof getHeapStatistics>): void {
    this.peak.heapBytes = Math.max(this.peak.heapBytes, h.total_heap_size);
    this.peak.externalBytes = Math.max(this.peak.externalBytes, h.external_memory);
  }
}
