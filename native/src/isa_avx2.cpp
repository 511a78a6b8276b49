// Kernels compiled for the avx2 path (see kernels/all.inc). Generated layout: do not add code here.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "allocator.h"
#include "kernels.h"
#include "threadpool.h"

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi2,f16c")
#define PLINTH_VW 8
namespace plinth {
namespace avx2 {
#include "kernels/all.inc"
}  // namespace avx2
}  // namespace plinth
#pragma GCC pop_options

namespace plinth {
#if defined(__x86_64__)
PLINTH_DEFINE_TABLE(avx2)
#endif
}  // namespace plinth
#else
namespace plinth { const KernelTable& table_avx2() { return table_portable(); } }
#endif
