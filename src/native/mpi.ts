/**
 * The optional MPI binding (native/mpi, built by `npm install` when Open MPI's `mpicxx` is
 * installed): collectives over float32 buffers that run on a communication thread, so a
 * training step can keep computing while gradients are summed across processes.
 *
 *     const mpi = loadMpi();                 // throws, saying what to install, when it is missing
 *     const { rank, size } = mpi.init();
 *     const op = mpi.allreduce(grads, 1 / size);   // returns at once
 *     ...                                           // more backward
 *     mpi.wait(op, 60_000);                          // [start, end] on mpi.now()'s clock
 *
 * Every rank must issue the same collectives in the same order (MPI's rule); the thread runs
 * them in the order they were started.
 */
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The C++ binding's surface (native/mpi/src/mpi.cpp). Op ids are numbers; times are seconds on a steady clock. */
export interface MpiBinding {
  init(): { rank: number; size: number; threadLevel: number };
  allreduce(buf: Float32Array, scale?: number): number;
  reduceScatter(src: Float32Array, dst: Float32Array, scale?: number): number;
  allgather(src: Float32Array, dst: Float32Array): number;
  broadcast(buf: Float32Array, root: number): number;
  barrier(): number;
  /** null while the op runs; else its [start, end] (and the op is collected). Throws the op's MPI error. */
  test(op: number): [number, number] | null;
  /** Blocks up to timeoutMs; null if the op still runs, else as test. */
  wait(op: number, timeoutMs: number): [number, number] | null;
  now(): number;
  /** Ends the whole job (every rank) with this exit code. */
  abort(code: number): never;
  finalize(): void;
  readonly library: string;
}

export const MPI_INSTALL_HINT =
  "install Open MPI (Debian/Ubuntu: apt-get install -y libopenmpi-dev openmpi-bin) and build the binding with `npm run build:mpi` (npm install does it when mpicxx is found)";

/** Where the binding is looked for: native/mpi/build/Release/plinth_mpi.node above this file. */
export function findMpiAddon(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, "native", "mpi", "build", "Release", "plinth_mpi.node");
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return null;
}

let loaded: MpiBinding | null = null;

/** The binding, loaded once; a clear error naming what to install when it is not built. */
export function loadMpi(): MpiBinding {
  if (loaded !== null) return loaded;
  const path = findMpiAddon();
  if (path === null) throw new Error(`data-parallel training needs the MPI addon native/mpi/build/Release/plinth_mpi.node, which is not built: ${MPI_INSTALL_HINT}`);
  try {
    loaded = createRequire(import.meta.url)(path) as MpiBinding;
  } catch (e) {
    throw new Error(`the MPI addon ${path} does not load (${(e as Error).message}): ${MPI_INSTALL_HINT}`);
  }
  return loaded;
}

/** True when the binding is built (the tests and the CLI check before they launch ranks). */
export function mpiAvailable(): boolean {
  return findMpiAddon() !== null;
}

/** This process's rank and world size when a launcher (mpirun, srun, Hydra) started it; null otherwise. */
export function launchedRank(env: NodeJS.ProcessEnv = process.env): { rank: number; size: number } | null {
  const pairs: [string, string][] = [
    ["OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"],
    ["PMI_RANK", "PMI_SIZE"],
    ["PMIX_RANK", "OMPI_COMM_WORLD_SIZE"],
    ["SLURM_PROCID", "SLURM_STEP_NUM_TASKS"],
  ];
  for (const [r, s] of pairs) {
    const rank = Number(env[r]), size = Number(env[s]);
    if (env[r] !== undefined && env[s] !== undefined && Number.isInteger(rank) && Number.isInteger(size) && size >= 1) return { rank, size };
  }
  return null;
}
