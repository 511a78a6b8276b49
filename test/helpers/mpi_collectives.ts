// The MPI binding's collectives on every rank (test/distributed.test.ts runs it under mpirun -np 2):
// prints one JSON line per rank with what each collective returned and the errors bad arguments raise.
import { World } from "../../src/train/parallel/world.js";

const world = World.join();
const { mpi, rank, size } = world;
const errors: string[] = [];
const attempt = (fn: () => unknown) => {
  try {
    fn();
    errors.push("no error");
  } catch (e) {
    errors.push((e as Error).message);
  }
};
const big = new Float32Array(1 << 20).fill(rank + 1);
const a = mpi.allreduce(big, 1 / size);
const src = Float32Array.from({ length: 4 * size }, (_, i) => i * (rank + 1)), part = new Float32Array(4);
const rs = mpi.reduceScatter(src, part);
const mine = Float32Array.of(rank * 10, rank * 10 + 1), all = new Float32Array(2 * size);
const ag = mpi.allgather(mine, all);
const b = Float32Array.of(rank, rank);
const bc = mpi.broadcast(b, size - 1);
const timing = await world.done(a, "allreduce");
for (const op of [rs, ag, bc]) await world.done(op, "collective");
await world.done(mpi.barrier(), "barrier");
attempt(() => mpi.reduceScatter(new Float32Array(3), new Float32Array(1)));
attempt(() => mpi.allgather(new Float32Array(2), new Float32Array(3)));
attempt(() => mpi.broadcast(new Float32Array(2), size));
attempt(() => mpi.allreduce(new Float64Array(2) as unknown as Float32Array));
attempt(() => mpi.test(123456));
process.stdout.write(JSON.stringify({ rank, size, allreduce: [big[0], big[big.length - 1]], reduceScatter: [...part], allgather: [...all], broadcast: [...b], seconds: timing.end - timing.start, errors }) + "\n");
