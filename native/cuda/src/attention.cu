// Flash attention, forward and backward from the saved log-sum-exp: no [Tq, Tk] tensor is
// ever stored (contract of native/src/kernels/attention.inc).
//
// Legend: B batch, Tq query rows, Tk key rows, NH heads, HS head size (<= 128), D the kernel's
// head-size bucket (16, 32, 64, 128), BR rows per block, BC key (or query) rows per tile.
// Element (b, t, h, d) of q is q[b*q_bs + t*q_ts + h*HS + d]; k, v, o and the gradients likewise
// (gq with q's strides, gk with k's, gv with v's), so the fused c_attn output is read in place.
// lse [B, NH, Tq]. With causal, query t sees keys [0, t + Tk - Tq].
//
// forward   one thread per query row, K/V tiles in shared memory, online softmax:
//           m' = max(m, max_j s_j), l = l e^(m-m') + sum_j e^(s_j-m'), acc likewise; o = acc / l,
//           lse = m + log l
// backward  Dt = dO_t . O_t (one pass), then
//           dQ: one thread per query row over key tiles:   p = e^(s - lse), ds = p (dO.v_j - Dt),
//               dq += ds k_j
//           dK, dV: one thread per key row over query tiles: dv += p dO_t, dk += ds q_t
//           (P is recomputed in both; each output row has one owner, so no atomics)
#include "common.cuh"
#include "plinth_cuda.h"

namespace plinth_cuda {
namespace {

constexpr int BR = 64, BC = 32;

struct Attn {
  int64_t B, Tq, Tk, NH, HS;
  float scale;
  bool causal;
  const float *q, *k, *v, *o, *lse_in, *go, *dt;
  int64_t q_bs, q_ts, k_bs, k_ts, v_bs, v_ts, o_bs, o_ts;
  float *out, *lse, *gq, *gk, *gv;
  bool acc;
};

__device__ __forceinline__ int64_t key_limit(const Attn& a, int64_t t) {
  if (!a.causal) return a.Tk;
  const int64_t l = t + (a.Tk - a.Tq) + 1;
  return l < a.Tk ? (l < 0 ? 0 : l) : a.Tk;
}

// Loads rows [r0, r0 + BC) of x (row stride ts, head offset) into tile [BC][D] (zeros past rows).
template <int D>
__device__ __forceinline__ void load_tile(float* tile, const float* x, int64_t ts, int64_t r0, int64_t rows, int64_t HS) {
  for (int idx = threadIdx.x; idx < BC * D; idx += blockDim.x) {
    const int r = idx / D, d = idx % D;
    tile[idx] = (r0 + r < rows && d < HS) ? x[(r0 + r) * ts + d] : 0.0f;
  }
}

template <int D>
__global__ void __launch_bounds__(BR) attention_forward_k(Attn a) {
  extern __shared__ float smem[];
  float* ks = smem;
  float* vs = smem + BC * D;
  const int64_t bh = blockIdx.y, b = bh / a.NH, h = bh % a.NH;
  const int64_t t = blockIdx.x * int64_t(BR) + threadIdx.x;
  const bool row = t < a.Tq;
  const float* q = a.q + b * a.q_bs + h * a.HS;
  const float* k = a.k + b * a.k_bs + h * a.HS;
  const float* v = a.v + b * a.v_bs + h * a.HS;
  float qr[D], acc[D];
#pragma unroll
  for (int d = 0; d < D; d++) {
    qr[d] = (row && d < a.HS) ? q[t * a.q_ts + d] * a.scale : 0.0f;
    acc[d] = 0.0f;
  }
  const int64_t lim = row ? key_limit(a, t) : 0;
  const int64_t last = min(a.Tq - 1, blockIdx.x * int64_t(BR) + BR - 1);
  const int64_t block_lim = key_limit(a, last);
  float m = -INFINITY, l = 0.0f;
  for (int64_t j0 = 0; j0 < block_lim; j0 += BC) {
    __syncthreads();
    load_tile<D>(ks, k, a.k_ts, j0, a.Tk, a.HS);
    load_tile<D>(vs, v, a.v_ts, j0, a.Tk, a.HS);
    __syncthreads();
    if (!row || j0 >= lim) continue;
    float s[BC];
    float mt = -INFINITY;
#pragma unroll
    for (int jj = 0; jj < BC; jj++) {
      float dot = 0.0f;
#pragma unroll
      for (int d = 0; d < D; d++) dot += qr[d] * ks[jj * D + d];
      s[jj] = (j0 + jj < lim) ? dot : -INFINITY;
      mt = fmaxf(mt, s[jj]);
    }
    const float mn = fmaxf(m, mt);
    const float corr = __expf(m - mn);
    l *= corr;
#pragma unroll
    for (int d = 0; d < D; d++) acc[d] *= corr;
#pragma unroll
    for (int jj = 0; jj < BC; jj++) {
      const float p = __expf(s[jj] - mn);
      l += p;
#pragma unroll
      for (int d = 0; d < D; d++) acc[d] += p * vs[jj * D + d];
    }
    m = mn;
  }
  if (!row) return;
  float* o = a.out + b * a.o_bs + t * a.o_ts + h * a.HS;
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
  for (int d = 0; d < D; d++)
    if (d < a.HS) o[d] = acc[d] * inv;
  if (a.lse != nullptr) a.lse[bh * a.Tq + t] = l > 0.0f ? m + logf(l) : -INFINITY;
}

// Dt[b, h, t] = dO_t . O_t
__global__ void attention_dt_k(Attn a, float* dt) {
  const int64_t total = a.B * a.NH * a.Tq;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = i % a.Tq, bh = i / a.Tq, b = bh / a.NH, h = bh % a.NH;
    const float* go = a.go + b * a.o_bs + t * a.o_ts + h * a.HS;
    const float* o = a.o + b * a.o_bs + t * a.o_ts + h * a.HS;
    float s = 0.0f;
    for (int64_t d = 0; d < a.HS; d++) s += go[d] * o[d];
    dt[i] = s;
  }
}

template <int D>
__global__ void __launch_bounds__(BR) attention_dq_k(Attn a) {
  extern __shared__ float smem[];
  float* ks = smem;
  float* vs = smem + BC * D;
  const int64_t bh = blockIdx.y, b = bh / a.NH, h = bh % a.NH;
  const int64_t t = blockIdx.x * int64_t(BR) + threadIdx.x;
  const bool row = t < a.Tq;
  const float* q = a.q + b * a.q_bs + h * a.HS;
  const float* go = a.go + b * a.o_bs + h * a.HS;
  const float* k = a.k + b * a.k_bs + h * a.HS;
  const float* v = a.v + b * a.v_bs + h * a.HS;
  float qr[D], gor[D], dq[D];
#pragma unroll
  for (int d = 0; d < D; d++) {
    qr[d] = (row && d < a.HS) ? q[t * a.q_ts + d] * a.scale : 0.0f;
    gor[d] = (row && d < a.HS) ? go[t * a.o_ts + d] : 0.0f;
    dq[d] = 0.0f;
  }
  const float lse = row ? a.lse_in[bh * a.Tq + t] : 0.0f;
  const float dt = row ? a.dt[bh * a.Tq + t] : 0.0f;
  const int64_t lim = row ? key_limit(a, t) : 0;
  const int64_t last = min(a.Tq - 1, blockIdx.x * int64_t(BR) + BR - 1);
  const int64_t block_lim = key_limit(a, last);
  for (int64_t j0 = 0; j0 < block_lim; j0 += BC) {
    __syncthreads();
    load_tile<D>(ks, k, a.k_ts, j0, a.Tk, a.HS);
    load_tile<D>(vs, v, a.v_ts, j0, a.Tk, a.HS);
    __syncthreads();
    if (!row || j0 >= lim) continue;
    for (int jj = 0; jj < BC; jj++) {
      if (j0 + jj >= lim) break;
      float s = 0.0f, dp = 0.0f;
#pragma unroll
      for (int d = 0; d < D; d++) {
        s += qr[d] * ks[jj * D + d];
        dp += gor[d] * vs[jj * D + d];
      }
      const float ds = __expf(s - lse) * (dp - dt);
#pragma unroll
      for (int d = 0; d < D; d++) dq[d] += ds * ks[jj * D + d];
    }
  }
  if (!row) return;
  float* gq = a.gq + b * a.q_bs + t * a.q_ts + h * a.HS;
#pragma unroll
  for (int d = 0; d < D; d++)
    if (d < a.HS) gq[d] = a.acc ? gq[d] + dq[d] * a.scale : dq[d] * a.scale;
}

template <int D>
__global__ void __launch_bounds__(BR) attention_dkv_k(Attn a) {
  extern __shared__ float smem[];
  float* qs = smem;                  // [BC][D] query rows (pre-scaled)
  float* gos = qs + BC * D;          // [BC][D] their output gradients
  float* lses = gos + BC * D;        // [BC]
  float* dts = lses + BC;            // [BC]
  float* mine = dts + BC;            // [BR][2D+1]: this thread's k and v rows (padded: no bank conflicts)
  const int64_t bh = blockIdx.y, b = bh / a.NH, h = bh % a.NH;
  const int64_t j = blockIdx.x * int64_t(BR) + threadIdx.x;
  const bool row = j < a.Tk;
  const float* q = a.q + b * a.q_bs + h * a.HS;
  const float* go = a.go + b * a.o_bs + h * a.HS;
  float* kr = mine + threadIdx.x * (2 * D + 1);
  float* vr = kr + D;
  for (int d = 0; d < D; d++) {
    kr[d] = (row && d < a.HS) ? a.k[b * a.k_bs + j * a.k_ts + h * a.HS + d] : 0.0f;
    vr[d] = (row && d < a.HS) ? a.v[b * a.v_bs + j * a.v_ts + h * a.HS + d] : 0.0f;
  }
  float dk[D], dv[D];
#pragma unroll
  for (int d = 0; d < D; d++) dk[d] = dv[d] = 0.0f;
  // Query t sees key j iff t >= j - (Tk - Tq): the block starts at its first key's first query.
  const int64_t first_key = blockIdx.x * int64_t(BR);
  int64_t t_start = a.causal ? first_key - (a.Tk - a.Tq) : 0;
  if (t_start < 0) t_start = 0;
  t_start = t_start / BC * BC;
  for (int64_t t0 = t_start; t0 < a.Tq; t0 += BC) {
    __syncthreads();
    for (int idx = threadIdx.x; idx < BC * D; idx += blockDim.x) {
      const int r = idx / D, d = idx % D;
      const bool ok = t0 + r < a.Tq && d < a.HS;
      qs[idx] = ok ? q[(t0 + r) * a.q_ts + d] * a.scale : 0.0f;
      gos[idx] = ok ? go[(t0 + r) * a.o_ts + d] : 0.0f;
    }
    for (int r = threadIdx.x; r < BC; r += blockDim.x) {
      const bool ok = t0 + r < a.Tq;
      lses[r] = ok ? a.lse_in[bh * a.Tq + t0 + r] : 0.0f;
      dts[r] = ok ? a.dt[bh * a.Tq + t0 + r] : 0.0f;
    }
    __syncthreads();
    if (!row) continue;
    for (int r = 0; r < BC; r++) {
      const int64_t t = t0 + r;
      if (t >= a.Tq) break;
      if (a.causal && j > t + (a.Tk - a.Tq)) continue;
      float s = 0.0f, dp = 0.0f;
#pragma unroll
      for (int d = 0; d < D; d++) {
        s += qs[r * D + d] * kr[d];
        dp += gos[r * D + d] * vr[d];
      }
      const float p = __expf(s - lses[r]);
      const float ds = p * (dp - dts[r]);
#pragma unroll
      for (int d = 0; d < D; d++) {
        dv[d] += p * gos[r * D + d];
        dk[d] += ds * qs[r * D + d];  // q is pre-scaled: dk = scale * sum ds q
      }
    }
  }
  if (!row) return;
  float* gk = a.gk + b * a.k_bs + j * a.k_ts + h * a.HS;
  float* gv = a.gv + b * a.v_bs + j * a.v_ts + h * a.HS;
#pragma unroll
  for (int d = 0; d < D; d++) {
    if (d < a.HS) {
      gk[d] = a.acc ? gk[d] + dk[d] : dk[d];
      gv[d] = a.acc ? gv[d] + dv[d] : dv[d];
    }
  }
}

template <class K>
bool launch(K kernel, dim3 grid, size_t smem, const Attn& a, const char* name) {
  if (smem > 48 * 1024 && !PC_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem))))
    return false;
  kernel<<<grid, BR, smem, stream()>>>(a);
  return ok(cudaGetLastError(), name, __FILE__, __LINE__);
}

template <int D>
bool run_forward(const Attn& a) {
  dim3 grid(static_cast<unsigned>((a.Tq + BR - 1) / BR), static_cast<unsigned>(a.B * a.NH));
  return launch(attention_forward_k<D>, grid, 2 * BC * D * sizeof(float), a, "attention_forward");
}

template <int D>
bool run_backward(const Attn& a) {
  dim3 gq(static_cast<unsigned>((a.Tq + BR - 1) / BR), static_cast<unsigned>(a.B * a.NH));
  if (!launch(attention_dq_k<D>, gq, 2 * BC * D * sizeof(float), a, "attention_backward (dq)")) return false;
  dim3 gk(static_cast<unsigned>((a.Tk + BR - 1) / BR), static_cast<unsigned>(a.B * a.NH));
  const size_t smem = (2 * BC * D + 2 * BC + BR * (2 * D + 1)) * sizeof(float);
  return launch(attention_dkv_k<D>, gk, smem, a, "attention_backward (dk, dv)");
}

template <bool Fwd>
bool dispatch(const Attn& a) {
  if (a.HS <= 16) return Fwd ? run_forward<16>(a) : run_backward<16>(a);
  if (a.HS <= 32) return Fwd ? run_forward<32>(a) : run_backward<32>(a);
  if (a.HS <= 64) return Fwd ? run_forward<64>(a) : run_backward<64>(a);
  return Fwd ? run_forward<128>(a) : run_backward<128>(a);
}

Attn make(const int64_t* dims, float scale, int causal, const float* q, int64_t q_bs, int64_t q_ts, const float* k, int64_t k_bs,
          int64_t k_ts, const float* v, int64_t v_bs, int64_t v_ts, int64_t o_bs, int64_t o_ts) {
  Attn a{};
  a.B = dims[0]; a.Tq = dims[1]; a.Tk = dims[2]; a.NH = dims[3]; a.HS = dims[4];
  a.scale = scale; a.causal = causal != 0;
  a.q = q; a.k = k; a.v = v;
  a.q_bs = q_bs; a.q_ts = q_ts; a.k_bs = k_bs; a.k_ts = k_ts; a.v_bs = v_bs; a.v_ts = v_ts; a.o_bs = o_bs; a.o_ts = o_ts;
  return a;
}

}  // namespace
}  // namespace plinth_cuda

using namespace plinth_cuda;

extern "C" {

int plinth_cuda_attention_forward(const int64_t* dims, float scale, int causal, const float* q, int64_t q_bs, int64_t q_ts,
                                  const float* k, int64_t k_bs, int64_t k_ts, const float* v, int64_t v_bs, int64_t v_ts,
                                  float* o, int64_t o_bs, int64_t o_ts, float* lse) {
  Attn a = make(dims, scale, causal, q, q_bs, q_ts, k, k_bs, k_ts, v, v_bs, v_ts, o_bs, o_ts);
  PC_REQUIRE(a.HS >= 1 && a.HS <= 128, "attention_forward: head size must be in [1, 128]");
  if (a.B * a.NH * a.Tq == 0) return 0;
  a.out = o;
  a.lse = lse;
  return dispatch<true>(a) ? 0 : 1;
}

int plinth_cuda_attention_backward(const int64_t* dims, float scale, int causal, const float* q, int64_t q_bs, int64_t q_ts,
                                   const float* k, int64_t k_bs, int64_t k_ts, const float* v, int64_t v_bs, int64_t v_ts,
                                   const float* o, int64_t o_bs, int64_t o_ts, const float* lse, const float* go, float* gq,
                                   float* gk, float* gv, int acc) {
  Attn a = make(dims, scale, causal, q, q_bs, q_ts, k, k_bs, k_ts, v, v_bs, v_ts, o_bs, o_ts);
  PC_REQUIRE(a.HS >= 1 && a.HS <= 128, "attention_backward: head size must be in [1, 128]");
  if (a.B * a.NH == 0) return 0;
  a.o = o; a.lse_in = lse; a.go = go; a.gq = gq; a.gk = gk; a.gv = gv; a.acc = acc != 0;
  const int64_t rows = a.B * a.NH * a.Tq;
  float* dt = static_cast<float*>(plinth_cuda_alloc((rows > 0 ? rows : 1) * sizeof(float)));
  if (dt == nullptr) return 1;
  bool good = true;
  if (rows > 0) {
    attention_dt_k<<<grid_for(rows, 256), 256, 0, stream()>>>(a, dt);
    good = PC_LAUNCHED("attention_backward (Dt)");
  }
  a.dt = dt;
  if (good) good = dispatch<false>(a);
  plinth_cuda_free(dt);
  return good ? 0 : 1;
}

}  // extern "C"
