// Data-parallel training over MPI with 2 ranks (mpirun): the binding's collectives; the same
// trajectory and weights as one process for clm and mlm, with and without the sharded optimizer;
// optimizer memory per rank; checkpoints that resume across world sizes; kill -9 of a rank.
// Skipped, saying why, when mpirun or the MPI addon is missing (.ci/run installs Open MPI).
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { mpiAvailable } from "../src/native/mpi.js";
import { GPT, gptConfig } from "../src/models/gpt/index.js";
import { listCheckpoints, loadCheckpoint } from "../src/train/checkpoint.js";

const here = dirname(fileURLToPath(import.meta.url));
const RANK = join(here, "helpers", "dp_rank.js");
const COLLECTIVES = join(here, "helpers", "mpi_collectives.js");
const hasMpirun = spawnSync("mpirun", ["--version"]).status === 0;
const skip = !hasMpirun ? "mpirun not found (apt-get install -y libopenmpi-dev openmpi-bin)" : !mpiAvailable() ? "the MPI addon is not built (npm run build:mpi)" : false;
if (skip) console.log(`# distributed tests skipped: ${skip}`);

// Two ranks of one compute thread each, beside a single process of one thread.
const ENV = { ...process.env, PLINTH_THREADS: "1", OMPI_MCA_mpi_yield_when_idle: "1", OMPI_ALLOW_RUN_AS_ROOT: "1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: "1" };
const MPIRUN = ["-np", "2", "--bind-to", "none", "--oversubscribe"];

interface RankOut {
  rank: number;
  size: number;
  losses: number[];
  steps: number;
  hash: string;
  optimizerBytes: number;
  stats?: { hiddenShare: number; commSeconds: number; buckets: number };
}

const dir = mkdtempSync(join(tmpdir(), "plinth-dp-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let runs = 0;

/** Runs the job on 1 process (plain node) or 2 ranks; returns rank 0's output and rank 0's final weights. */
function train(procs: 1 | 2, job: Record<string, unknown>): { out: RankOut; weights: Float32Array; all: RankOut[] } {
  const weightsOut = join(dir, `weights-${runs++}.f32`);
  const args = [RANK, JSON.stringify({ ...job, weightsOut })];
  const r = procs === 1 ? spawnSync(process.execPath, args, { env: ENV, encoding: "utf8" }) : spawnSync("mpirun", [...MPIRUN, process.execPath, ...args], { env: ENV, encoding: "utf8" });
  assert.equal(r.status, 0, `${procs} rank(s) failed:\n${r.stdout}\n${r.stderr}`);
  const all = r.stdout.trim().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as RankOut).sort((a, b) => a.rank - b.rank);
  assert.equal(all.length, procs);
  const buf = readFileSync(weightsOut);
  return { out: all[0], weights: new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4), all };
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

// Float tolerance: one process sums a gradient over all 8 rows inside one GEMM, two ranks over 4
// rows each and then add the halves, so sums differ in the last bits and Adam carries that on.
const LOSS_TOL = 2e-4, WEIGHT_TOL = 2e-4;

describe("data-parallel training over MPI (2 ranks)", { skip }, () => {
  test("collectives: allreduce, reduce-scatter, all-gather, broadcast, and argument errors", () => {
    const r = spawnSync("mpirun", [...MPIRUN, process.execPath, COLLECTIVES], { env: ENV, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const [a, b] = r.stdout.trim().split("\n").map((l) => JSON.parse(l)).sort((x, y) => x.rank - y.rank);
    assert.deepEqual(a.allreduce, [1.5, 1.5]); // (1 + 2) / 2
    assert.deepEqual(a.reduceScatter, [0, 3, 6, 9]);
    assert.deepEqual(b.reduceScatter, [12, 15, 18, 21]);
    assert.deepEqual(a.allgather, [0, 1, 10, 11]);
    assert.deepEqual(b.broadcast, [1, 1]);
    assert.match(a.errors[0], /reduceScatter: src has 3 elements, not a multiple of the world size 2/);
    assert.match(a.errors[1], /allgather: dst has 3 elements, expected src\*size = 4/);
    assert.match(a.errors[2], /broadcast: root 2 is not a rank of a world of 2/);
    assert.match(a.errors[3], /allreduce: argument 0 must be a Float32Array/);
    assert.match(a.errors[4], /test: no pending operation/);
  });

  const single: Record<string, ReturnType<typeof train>> = {};
  const sharded: Record<string, ReturnType<typeof train>> = {};

  for (const objective of ["clm", "mlm"] as const) {
    test(`${objective}: 2 ranks (plain and ZeRO-1) follow the single-process trajectory over 50 steps`, () => {
      const outDir = (name: string) => join(dir, `${objective}-${name}`);
      single[objective] = train(1, { objective, steps: 50, outDir: outDir("single"), checkpointEvery: 25 });
      sharded[objective] = train(2, { objective, steps: 50, shard: true, outDir: outDir("zero"), checkpointEvery: 25 });
      const runs = [sharded[objective]];
      if (objective === "clm") runs.push(train(2, { objective, steps: 50 }));
      const one = single[objective];
      for (const dp of runs) {
        assert.equal(dp.all[0].hash, dp.all[1].hash, "the two ranks hold bit-identical weights");
        assert.equal(dp.out.losses.length, 50);
        assert.ok(maxDiff(dp.out.losses, one.out.losses) < LOSS_TOL, `losses differ by ${maxDiff(dp.out.losses, one.out.losses)}`);
        assert.ok(maxDiff(dp.weights, one.weights) < WEIGHT_TOL, `weights differ by ${maxDiff(dp.weights, one.weights)}`);
        assert.ok(dp.out.stats!.buckets > 1 && dp.out.stats!.commSeconds > 0);
      }
      // The loss went down: the runs train, not just agree.
      assert.ok(one.out.losses.at(-1)! < one.out.losses[0] - 0.5);
      // ZeRO-1: each rank holds half the moments (plus padding to a multiple of 2 per bucket).
      const ratio = sharded[objective].out.optimizerBytes / one.out.optimizerBytes;
      assert.ok(ratio > 0.49 && ratio < 0.52, `optimizer state per rank is ${ratio} of one process's`);
    });
  }

  test("checkpoints resume across world sizes: 2 -> 1, 1 -> 2 (close), 2 -> 2 (exact)", () => {
    const from = (src: string, name: string) => {
      const to = join(dir, name);
      const ckpt = listCheckpoints(join(dir, src)).find((c) => c.step === 25)!;
      mkdirSync(join(to, "checkpoints"), { recursive: true });
      cpSync(ckpt.path, join(to, "checkpoints", "step-000000025"), { recursive: true });
      return to;
    };
    const one = single.clm.out.losses, two = sharded.clm.out.losses;
    const twoToOne = train(1, { objective: "clm", steps: 50, outDir: from("clm-zero", "2to1") });
    assert.equal(twoToOne.out.losses.length, 25);
    assert.ok(maxDiff(twoToOne.out.losses, one.slice(25)) < LOSS_TOL);
    assert.ok(maxDiff(twoToOne.weights, single.clm.weights) < WEIGHT_TOL);
    const oneToTwo = train(2, { objective: "clm", steps: 50, shard: true, outDir: from("clm-single", "1to2") });
    assert.ok(maxDiff(oneToTwo.out.losses, one.slice(25)) < LOSS_TOL);
    const twoToTwo = train(2, { objective: "clm", steps: 50, shard: true, outDir: from("clm-zero", "2to2") });
    assert.deepEqual(twoToTwo.out.losses, two.slice(25));
    assert.deepEqual(twoToTwo.weights, sharded.clm.weights);
  });

  test("kill -9 of one rank: the job ends within 60 s with a clear message, no checkpoint is corrupt, the rerun resumes to the same loss", async () => {
    const outDir = join(dir, "killed");
    const job = { objective: "clm", steps: 50, shard: true, outDir, checkpointEvery: 25 };
    const child = spawn("mpirun", [...MPIRUN, process.execPath, RANK, JSON.stringify({ ...job, slow: true })], { env: ENV });
    let stdout = "", stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    // Wait for the checkpoint at step 25, then kill rank 1 mid-run.
    const t0 = Date.now();
    while (listCheckpoints(outDir).length === 0) {
      assert.ok(Date.now() - t0 < 60_000, `no checkpoint after 60 s:\n${stdout}\n${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const pid = Number(/pid (\d+) rank 1/.exec(stdout)![1]);
    process.kill(pid, "SIGKILL");
    const killedAt = Date.now();
    const code = await exited;
    const seconds = (Date.now() - killedAt) / 1000;
    assert.notEqual(code, 0);
    assert.ok(seconds < 60, `the job took ${seconds} s to end`);
    assert.match(stderr, /rank 1.*(signal 9|Killed)|killed|exited on signal 9/is);
    // Every complete checkpoint loads.
    const ckpts = listCheckpoints(outDir);
    assert.ok(ckpts.length >= 1);
    for (const c of ckpts) loadCheckpoint(c.path, new GPT(gptConfig({ vocab_size: 257, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 2 })), null);
    assert.ok(existsSync(join(ckpts.at(-1)!.path, "optimizer.safetensors")));
    // Rerunning the same command resumes and reaches the uninterrupted run's losses and weights exactly.
    const rerun = train(2, job);
    const resumedAt = 50 - rerun.out.losses.length;
    assert.ok(resumedAt >= 25);
    assert.deepEqual(rerun.out.losses, sharded.clm.out.losses.slice(resumedAt));
    assert.deepEqual(rerun.weights, sharded.clm.weights);
  });
});
