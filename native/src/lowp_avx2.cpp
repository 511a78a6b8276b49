// Low-precision kernels compiled for the avx2 path (see kernels/lowp.inc).
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "allocator.h"
#include "lowp.h"
#include "threadpool.h"

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi2,f16c")
#define PLINTH_VW 8
namespace plinth {
namespace lp_avx2 {
#include "kernels/lowp.inc"
}  // namespace lp_avx2
PLINTH_DEFINE_LOWP(avx2)
}  // namespace plinth
#undef PLINTH_VW
#pragma GCC pop_options
#else
namespace plinth { const LowpTable& lowp_avx2() { return lowp_portable(); } }
#endif
