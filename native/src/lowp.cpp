// Low-precision dispatch, weight packing and the memory-bandwidth probe (see lowp.h).
// PLINTH_LOWP=emulated starts with the bf16/VNNI instructions off (set_lowp_native turns them back on);
// PLINTH_LOWP=vnni keeps them but leaves AMX off (set_lowp_amx turns it back on).
#include "lowp.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#if defined(__linux__) && defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "threadpool.h"

namespace plinth {
namespace {

bool& native_allowed() {
  static bool on = [] {
    const char* env = std::getenv("PLINTH_LOWP");
    return env == nullptr || std::strcmp(env, "emulated") != 0;
  }();
  return on;
}

bool& amx_allowed() {
  static bool on = [] {
    const char* env = std::getenv("PLINTH_LOWP");
    return env == nullptr || (std::strcmp(env, "emulated") != 0 && std::strcmp(env, "vnni") != 0);
  }();
  return on;
}

uint32_t bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return ((u >> 16) | 0x40u) & 0xffffu;
  return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

// W(n, k) of a [N, K] (out_in) or [K, N] (in_out) matrix.
inline float weight_at(const float* W, int64_t N, int64_t K, bool in_out, int64_t n, int64_t k) {
  return in_out ? W[k * N + n] : W[n * K + k];
}

}  // namespace

bool lowp_native_supported() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return isa_supported("avx512") && __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

void set_lowp_native(bool on) { native_allowed() = on; }

// CPUID leaf 7 EDX: bit 22 amx_bf16, bit 24 amx_tile, bit 25 amx_int8. Linux hands out the tile data state only
// on request (arch_prctl ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA, process-wide); a kernel
// that refuses, or is too old to know the request, leaves AMX off.
bool lowp_amx_supported() {
  static const bool ok = [] {
#if defined(__linux__) && defined(__x86_64__)
    if (!lowp_native_supported()) return false;
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    if (!((d >> 22) & 1u) || !((d >> 24) & 1u) || !((d >> 25) & 1u)) return false;
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
    return false;
#endif
  }();
  return ok;
}

void set_lowp_amx(bool on) { amx_allowed() = on; }

const LowpTable& lowp() {
  const char* isa = kernels().isa;
  if (std::strcmp(isa, "avx512") == 0) {
    if (!native_allowed() || !lowp_native_supported()) return lowp_avx512();
    return amx_allowed() && lowp_amx_supported() ? lowp_amx() : lowp_avx512_bf16();
  }
  if (std::strcmp(isa, "avx2") == 0) return lowp_avx2();
  return lowp_portable();
}

int64_t packed_bf16_words(int64_t N, int64_t K) { return (N + 15) / 16 * 16 * ((K + 1) / 2); }
int64_t packed_int8_bytes(int64_t N, int64_t K) { return (N + 15) / 16 * 64 * ((K + 3) / 4); }

void pack_bf16(int64_t N, int64_t K, const float* W, bool in_out, uint32_t* dst) {
  const int64_t K2 = (K + 1) / 2, strips = (N + 15) / 16;
  for (int64_t s = 0; s < strips; s++)
    for (int64_t p = 0; p < K2; p++)
      for (int64_t j = 0; j < 16; j++) {
        const int64_t n = s * 16 + j, k = 2 * p;
        uint32_t w = 0;
        if (n < N) {
          w = bf16_bits(weight_at(W, N, K, in_out, n, k));
          if (k + 1 < K) w |= bf16_bits(weight_at(W, N, K, in_out, n, k + 1)) << 16;
        }
        dst[(s * K2 + p) * 16 + j] = w;
      }
}

void pack_int8(int64_t N, int64_t K, const float* W, bool in_out, int8_t* dst, float* scales, int32_t* wsum) {
  const int64_t K4 = (K + 3) / 4, strips = (N + 15) / 16;
  std::memset(dst, 0, static_cast<size_t>(strips * K4 * 64));
  for (int64_t n = 0; n < N; n++) {
    float amax = 0.0f;
    for (int64_t k = 0; k < K; k++) amax = std::fmax(amax, std::fabs(weight_at(W, N, K, in_out, n, k)));
    const float scale = amax > 0.0f ? amax / 127.0f : 1.0f;
    int32_t sum = 0;
    const int64_t s = n / 16, j = n % 16;
    for (int64_t k = 0; k < K; k++) {
      float q = std::nearbyint(weight_at(W, N, K, in_out, n, k) / scale);
      q = q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q;
      const int8_t qi = static_cast<int8_t>(q);
      dst[((s * K4 + k / 4) * 16 + j) * 4 + k % 4] = qi;
      sum += qi;
    }
    scales[n] = scale;
    wsum[n] = sum;
  }
}

volatile double g_sink;  // keeps the probe's sum alive

int64_t stream_read(const float* buf, int64_t n) {
  typedef float v4 __attribute__((vector_size(16)));
  struct Ctx { const float* buf; int64_t per; int64_t n; double sums[1024]; };
  static Ctx ctx;
  ctx.buf = buf;
  const int64_t threads = num_threads() < 1024 ? num_threads() : 1024;
  ctx.per = (n / threads) & ~int64_t(63);
  ctx.n = n;
  parallel_for(threads, [](void* c, int64_t b, int64_t e) {
    auto* x = static_cast<Ctx*>(c);
    for (int64_t t = b; t < e; t++) {
      const float* p = x->buf + t * x->per;
      v4 a0{}, a1{}, a2{}, a3{};
      for (int64_t i = 0; i + 16 <= x->per; i += 16) {
        v4 l0, l1, l2, l3;
        std::memcpy(&l0, p + i, 16);
        std::memcpy(&l1, p + i + 4, 16);
        std::memcpy(&l2, p + i + 8, 16);
        std::memcpy(&l3, p + i + 12, 16);
        a0 += l0, a1 += l1, a2 += l2, a3 += l3;
      }
      const v4 s = a0 + a1 + a2 + a3;
      x->sums[t] = static_cast<double>(s[0] + s[1] + s[2] + s[3]);
    }
  }, &ctx);
  double total = 0;
  for (int64_t t = 0; t < threads; t++) total += ctx.sums[t];
  g_sink = total;
  return threads * ctx.per * 4;
}

}  // namespace plinth
