// Low-precision kernels for AVX-512: products on float32 FMAs and int32 multiplies (lowp_avx512),
// and on vdpbf16ps / vpdpbusd (lowp_avx512_bf16, for CPUs with avx512_bf16 and avx512_vnni).
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
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi2,f16c")
#define PLINTH_VW 16
namespace plinth {
namespace lp_avx512 {
#include "kernels/lowp.inc"
}  // namespace lp_avx512
PLINTH_DEFINE_LOWP(avx512)
}  // namespace plinth
#undef PLINTH_VW
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx512vnni,avx2,fma,bmi2,f16c")
#define PLINTH_VW 16
#define PLINTH_LOWP_NATIVE 1
namespace plinth {
namespace lp_avx512_bf16 {
#include "kernels/lowp.inc"
}  // namespace lp_avx512_bf16
PLINTH_DEFINE_LOWP(avx512_bf16)
}  // namespace plinth
#undef PLINTH_VW
#undef PLINTH_LOWP_NATIVE
#pragma GCC pop_options

// The AMX path: lowp_avx512_bf16's kernels, with the training GEMM, the packed bf16 and int8
// linears from 16 rows up and the bf16 peak probe on AMX tiles (kernels/amx.inc), for CPUs with
// amx_tile, amx_bf16 and amx_int8 whose kernel grants the tile state.
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx512vnni,amx-tile,amx-bf16,amx-int8,avx2,fma,bmi2,f16c")
#define PLINTH_VW 16
#define PLINTH_LOWP_NATIVE 1
namespace plinth {
namespace lp_amx {
#include "kernels/lowp.inc"
#include "kernels/amx.inc"
}  // namespace lp_amx
static const LowpTable k_lowp_amx = {"amx", &lp_amx::gemm_bf16_amx, &lp_amx::linear_bf16_amx, &lp_amx::linear_int8_amx,
                                     &lp_amx::attention_forward_bf16, &lp_amx::attention_backward_bf16,
                                     &lp_amx::linear_f32, &lp_amx::decode_layer, &lp_amx::bf16_peak_amx,
                                     &lp_amx::int8_peak};
const LowpTable& lowp_amx() { return k_lowp_amx; }
}  // namespace plinth
#undef PLINTH_VW
#undef PLINTH_LOWP_NATIVE
#pragma GCC pop_options
#else
namespace plinth {
const LowpTable& lowp_avx512() { return lowp_portable(); }
const LowpTable& lowp_avx512_bf16() { return lowp_portable(); }
const LowpTable& lowp_amx() { return lowp_portable(); }
}  // namespace plinth
#endif
