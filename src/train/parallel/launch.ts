/**
 * `--procs N` on one machine: the command re-runs itself under `mpirun -np N`, so that every
 * rank is an ordinary MPI process (the same path as `mpirun --hostfile` or Slurm's `srun`).
 * Each rank gets PLINTH_THREADS = its share of the cores unless the user set it; ranks are
 * not bound to cores (`--bind-to none`) because each runs a thread pool and a communication thread.
 */
import { spawn } from "node:child_process";
import { availableParallelism } from "node:os";

/** Compute threads per rank: the machine's cores shared evenly, at least one. */
export function ranksThreads(procs: number, cores = availableParallelism()): number {
  return Math.max(1, Math.floor(cores / procs));
}

/** mpirun's command line for `procs` ranks of `node script ...args`. */
export function launchArgs(procs: number, script: string, args: string[], env: NodeJS.ProcessEnv = process.env): string[] {
  if (!(Number.isInteger(procs) && procs >= 1)) throw new RangeError(`--procs must be a positive integer, got ${procs}`);
  const out = ["-np", String(procs), "--bind-to", "none", "--oversubscribe"];
  // Open MPI refuses to start as root unless told; containers often run as root.
  if (process.getuid?.() === 0) out.push("--allow-run-as-root");
  const threads = env.PLINTH_THREADS ?? String(ranksThreads(procs));
  out.push("-x", `PLINTH_THREADS=${threads}`, "-x", "PLINTH_MPI_TIMEOUT");
  out.push(process.execPath, script, ...args);
  return out;
}

/** Runs the ranks with this terminal's output; resolves with mpirun's exit code. */
export function runUnderMpirun(procs: number, script: string, args: string[]): Promise<number> {
  const env = { ...process.env, PLINTH_MPI_TIMEOUT: process.env.PLINTH_MPI_TIMEOUT ?? "60" };
  const child = spawn("mpirun", launchArgs(procs, script, args, env), { stdio: "inherit", env });
  return new Promise((resolve, reject) => {
    child.on("error", (e) => reject(new Error(`--procs ${procs}: could not start mpirun (${e.message}); install Open MPI (apt-get install -y libopenmpi-dev openmpi-bin)`)));
    child.on("exit", (code, signal) => resolve(code ?? (signal !== null ? 128 + 15 : 1)));
  });
}
