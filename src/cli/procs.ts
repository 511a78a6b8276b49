/**
 * `--procs N` for the training commands: checks the global batch against N, loads the MPI
 * binding (its absence is a clear error before any rank starts) and re-runs the same command
 * without `--procs` under `mpirun -np N`.
 */
import { loadMpi } from "../native/mpi.js";
import { runUnderMpirun } from "../train/parallel/index.js";
import { UsageError } from "./args.js";

/** argv without its `--procs N` / `--procs=N`. */
function withoutProcs(argv: string[]): string[] {
  return argv.filter((a, i) => !(a === "--procs" || a.startsWith("--procs=") || (i > 0 && argv[i - 1] === "--procs")));
}

/** Runs `plinth <command> argv` as `procs` ranks; `batch` is the global batch and its flag's name. */
export async function runRanks(procs: number, command: string, argv: string[], batch: { flag: string; value: number }, onFailure = ""): Promise<void> {
  if (batch.value % procs !== 0) throw new UsageError(`--${batch.flag} ${batch.value} must be a multiple of --procs ${procs} (it is the global batch)`);
  loadMpi();
  const code = await runUnderMpirun(procs, process.argv[1], [command, ...withoutProcs(argv)]);
  if (code !== 0) throw new Error(`the ${procs} ranks failed (mpirun exited with ${code})${onFailure}`);
}
