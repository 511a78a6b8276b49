// Low-precision kernels compiled for the portable path (see kernels/lowp.inc).
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

#define PLINTH_VW 4
namespace plinth {
namespace lp_portable {
#include "kernels/lowp.inc"
}  // namespace lp_portable
PLINTH_DEFINE_LOWP(portable)
}  // namespace plinth
#undef PLINTH_VW
