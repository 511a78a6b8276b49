// Kernels compiled for the avx512 path (see kernels/all.inc). Generated layout: do not add code here.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "allocator.h"
#include "kernels.h"
#include "threadpool.h"

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi2,f16c")
#define PLINTH_VW 16
namespace plinth {
namespace avx512 {
#include "kernels/all.inc"
}  // namespace avx512
}  // namespace plinth
#pragma GCC pop_options

namespace plinth {
#if defined(__x86_64__)
PLINTH_DEFINE_TABLE(avx512)
#endif
}  // namespace plinth
#else
namespace plinth { const KernelTable& table_avx512() { return table_portable(); } }
#endif
