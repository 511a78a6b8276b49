/**
 * The process group of a data-parallel run: MPI's world (src/native/mpi.ts) with this rank,
 * the world size, awaited collectives with a heartbeat timeout, and errors that carry the rank.
 *
 * A rank that dies mid-run leaves its peers blocked in a collective: mpirun normally notices
 * the death and ends the job; where it cannot (a lost host), a collective that has not finished
 * within `timeoutSeconds` (PLINTH_MPI_TIMEOUT, default 60) aborts the job with a clear message.
 */
import { loadMpi, type MpiBinding } from "../../native/mpi.js";

export interface Timing {
  start: number;
  end: number;
}

export class World {
  readonly rank: number;
  readonly size: number;
  readonly mpi: MpiBinding;
  timeoutSeconds: number;

  private constructor(mpi: MpiBinding, rank: number, size: number, timeoutSeconds: number) {
    this.mpi = mpi;
    this.rank = rank;
    this.size = size;
    this.timeoutSeconds = timeoutSeconds;
  }

  /** Joins MPI's world (once per process); MPI is finalized when the process exits. */
  static join(timeoutSeconds = Number(process.env.PLINTH_MPI_TIMEOUT ?? 60)): World {
    if (!(timeoutSeconds > 0)) throw new RangeError(`World.join: the collective timeout must be > 0 seconds, got ${timeoutSeconds}`);
    const mpi = loadMpi();
    // Ranks often share cores with each other's compute threads: a rank waiting in a collective
    // should yield its core rather than spin (Open MPI reads this before MPI_Init).
    process.env.OMPI_MCA_mpi_yield_when_idle ??= "1";
    const { rank, size } = mpi.init();
    if (!joined) {
      joined = true;
      // MPI wants every rank to finalize; mpirun reports a rank that exits without it as failed.
      process.once("exit", () => mpi.finalize());
    }
    return new World(mpi, rank, size, timeoutSeconds);
  }

  get leader(): boolean {
    return this.rank === 0;
  }

  /** Prefixes what a rank reports, so that interleaved output says who said it. */
  tag(message: string): string {
    return `[rank ${this.rank}/${this.size}] ${message}`;
  }

  /**
   * Waits for a collective, yielding to the event loop every second so signals are seen; past
   * the timeout the job is aborted (every rank), since a peer has most likely died.
   */
  async done(op: number, what: string, timeoutSeconds = this.timeoutSeconds): Promise<Timing> {
    const deadline = this.mpi.now() + timeoutSeconds;
    for (;;) {
      const t = this.waitSlice(op, what, 1000);
      if (t !== null) return t;
      if (this.mpi.now() > deadline) this.fail(`${what} has not completed in ${timeoutSeconds} s: another rank has probably died or lost its network; aborting the job`);
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** As done(), blocking (checkpoint gathers, which run outside the async loop). */
  doneSync(op: number, what: string): Timing {
    const t = this.waitSlice(op, what, this.timeoutSeconds * 1000);
    if (t === null) this.fail(`${what} has not completed in ${this.timeoutSeconds} s: another rank has probably died or lost its network; aborting the job`);
    return t!;
  }

  private waitSlice(op: number, what: string, ms: number): Timing | null {
    let t: [number, number] | null;
    try {
      t = this.mpi.wait(op, ms);
    } catch (e) {
      this.fail(`${what}: ${(e as Error).message}`);
    }
    return t === null ? null : { start: t[0], end: t[1] };
  }

  /** Sums small values (losses, flags) across ranks; blocking. */
  sumSync(values: number[], what: string): number[] {
    const buf = Float32Array.from(values);
    this.doneSync(this.mpi.allreduce(buf), what);
    return [...buf];
  }

  /** Says what went wrong, with the rank, and ends the job on every rank. */
  fail(message: string): never {
    process.stderr.write(`plinth: ${this.tag(message)}\n`);
    return this.mpi.abort(3);
  }
}

let joined = false;
