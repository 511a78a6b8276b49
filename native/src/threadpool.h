// A fixed pool of worker threads for data-parallel kernels.
//
// parallel_for(n, fn, ctx) splits [0, n) into one contiguous range per thread
// (static partition, so results are deterministic for a given thread count);
// the calling thread runs the first range itself. Workers spin briefly after a
// job before sleeping, because kernels arrive back to back during training.
#pragma once
#include <cstdint>

namespace plinth {

using TaskFn = void (*)(void* ctx, int64_t begin, int64_t end);

void parallel_for(int64_t n, TaskFn fn, void* ctx);
int num_threads();
// Resizes the pool; n < 1 means "as many threads as cores".
void set_num_threads(int n);
// Index of the calling thread inside a parallel_for (0 = caller), else 0.
int thread_index();

}  // namespace plinth
