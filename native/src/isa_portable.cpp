// Kernels compiled for the portable path (see kernels/all.inc). Generated layout: do not add code here.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "allocator.h"
#include "kernels.h"
#include "threadpool.h"

#define PLINTH_VW 4
namespace plinth {
namespace portable {
#include "kernels/all.inc"
}  // namespace portable
}  // namespace plinth

namespace plinth {
PLINTH_DEFINE_TABLE(portable)
}  // namespace plinth
