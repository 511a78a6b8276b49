// Reductions, softmax and LayerNorm, forward and backward (contracts of the CPU kernels in
// native/src/kernels/{reduce,softmax,layernorm}.inc).
//
// reduce:    x viewed as [outer, n, inner] -> out [outer, inner] (sum, mean, max); backward
//            gx[o, i, j] (+)= gout[o, j] (· 1/n for mean); max has no backward
// softmax:   x, y [rows, n]: y = exp(x - max) / sum;  gx (+)= y (gy - sum(gy y))
// layernorm: x, y, gx [rows, C]; w, b, gw, gb [C]; mean, rstd [rows]
//            y = (x - mean) rstd w + b;  gx (+)= rstd (dxh - mean(dxh) - xh mean(dxh xh)), dxh = gy w
//            gw += sum_rows gy xh, gb += sum_rows gy  (column partial sums over row chunks, then atomics)
// One block per row where a row is reduced; one thread per output column otherwise.
#include "common.cuh"
#include "plinth_cuda.h"

namespace plinth_cuda {
namespace {

constexpr int T = 256;

// inner == 1: one block per output, reducing a contiguous row of n.
__global__ void reduce_rows_k(int op, int64_t n, const float* x, float* out) {
  __shared__ float smem[32];
  const float* row = x + blockIdx.x * n;
  float acc = op == kMax ? -INFINITY : 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc = op == kMax ? fmaxf(acc, row[i]) : acc + row[i];
  acc = op == kMax ? block_max(acc, smem) : block_sum(acc, smem);
  if (threadIdx.x == 0) out[blockIdx.x] = op == kMean ? acc / static_cast<float>(n) : acc;
}

// inner > 1: one thread per (o, j), walking n with stride inner (coalesced over j).
__global__ void reduce_cols_k(int op, int64_t outer, int64_t n, int64_t inner, const float* x, float* out) {
  const int64_t total = outer * inner;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = t / inner, j = t % inner;
    const float* xs = x + o * n * inner + j;
    float acc = op == kMax ? -INFINITY : 0.0f;
    for (int64_t i = 0; i < n; i++) acc = op == kMax ? fmaxf(acc, xs[i * inner]) : acc + xs[i * inner];
    out[t] = op == kMean ? acc / static_cast<float>(n) : acc;
  }
}

__global__ void reduce_backward_k(int64_t outer, int64_t n, int64_t inner, float scale, const float* g, float* gx, bool acc) {
  const int64_t total = outer * n * inner;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = t % inner, o = t / (n * inner);
    const float d = g[o * inner + j] * scale;
    gx[t] = acc ? gx[t] + d : d;
  }
}

__global__ void softmax_forward_k(int64_t n, const float* x, float* y) {
  __shared__ float smem[32];
  const float* xr = x + blockIdx.x * n;
  float* yr = y + blockIdx.x * n;
  float m = -INFINITY;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) m = fmaxf(m, xr[i]);
  m = block_max(m, smem);
  if (m == -INFINITY) m = 0.0f;  // a fully masked row
  float s = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += expf(xr[i] - m);
  s = block_sum(s, smem);
  const float inv = s > 0.0f ? 1.0f / s : 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = expf(xr[i] - m) * inv;
}

__global__ void softmax_backward_k(int64_t n, const float* y, const float* gy, float* gx, bool acc) {
  __shared__ float smem[32];
  const int64_t off = blockIdx.x * n;
  float dot = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) dot += y[off + i] * gy[off + i];
  dot = block_sum(dot, smem);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const float d = y[off + i] * (gy[off + i] - dot);
    gx[off + i] = acc ? gx[off + i] + d : d;
  }
}

__global__ void layernorm_forward_k(int64_t C, const float* x, const float* w, const float* b, float eps, float* y,
                                    float* mean, float* rstd) {
  __shared__ float smem[32];
  const int64_t r = blockIdx.x;
  const float* xr = x + r * C;
  float s = 0.0f;
  for (int64_t i = threadIdx.x; i < C; i += blockDim.x) s += xr[i];
  const float m = block_sum(s, smem) / static_cast<float>(C);
  float v = 0.0f;
  for (int64_t i = threadIdx.x; i < C; i += blockDim.x) v += (xr[i] - m) * (xr[i] - m);
  const float rs = rsqrtf(block_sum(v, smem) / static_cast<float>(C) + eps);
  float* yr = y + r * C;
  for (int64_t i = threadIdx.x; i < C; i += blockDim.x) yr[i] = (xr[i] - m) * rs * w[i] + b[i];
  if (threadIdx.x == 0) {
    if (mean != nullptr) mean[r] = m;
    if (rstd != nullptr) rstd[r] = rs;
  }
}

__global__ void layernorm_backward_dx_k(int64_t C, const float* x, const float* w, const float* mean, const float* rstd,
                                        const float* gy, float* gx, bool acc) {
  __shared__ float smem[32];
  const int64_t r = blockIdx.x;
  const float* xr = x + r * C;
  const float* g = gy + r * C;
  const float m = mean[r], rs = rstd[r];
  float sd = 0.0f, sdx = 0.0f;
  for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
    const float d = g[i] * w[i];
    sd += d;
    sdx += d * (xr[i] - m) * rs;
  }
  sd = block_sum(sd, smem) / static_cast<float>(C);
  sdx = block_sum(sdx, smem) / static_cast<float>(C);
  float* dx = gx + r * C;
  for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
    const float xh = (xr[i] - m) * rs;
    const float d = rs * (g[i] * w[i] - sd - xh * sdx);
    dx[i] = acc ? dx[i] + d : d;
  }
}

// Grid (ceil(C / T), chunks): each thread sums its column over one chunk of rows.
__global__ void layernorm_backward_dw_k(int64_t rows, int64_t C, const float* x, const float* mean, const float* rstd,
                                        const float* gy, float* gw, float* gb) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  const int64_t chunk = (rows + gridDim.y - 1) / gridDim.y;
  const int64_t r0 = blockIdx.y * chunk, r1 = r0 + chunk < rows ? r0 + chunk : rows;
  float sw = 0.0f, sb = 0.0f;
  for (int64_t r = r0; r < r1; r++) {
    const float g = gy[r * C + c];
    sw += g * (x[r * C + c] - mean[r]) * rstd[r];
    sb += g;
  }
  atomicAdd(gw + c, sw);
  atomicAdd(gb + c, sb);
}

}  // namespace
}  // namespace plinth_cuda

using namespace plinth_cuda;

extern "C" {

int plinth_cuda_reduce_forward(int op, int64_t outer, int64_t n, int64_t inner, const float* x, float* out) {
  if (outer * inner == 0) return 0;
  PC_REQUIRE(n > 0 || op != kMax, "reduce_forward: max over an empty axis");
  if (inner == 1 && outer <= 0x7fffffff) {
    reduce_rows_k<<<static_cast<unsigned>(outer), T, 0, stream()>>>(op, n, x, out);
  } else {
    reduce_cols_k<<<grid_for(outer * inner, T), T, 0, stream()>>>(op, outer, n, inner, x, out);
  }
  return PC_LAUNCHED("reduce_forward") ? 0 : 1;
}

int plinth_cuda_reduce_backward(int op, int64_t outer, int64_t n, int64_t inner, const float* gout, float* gx, int acc) {
  PC_REQUIRE(op != kMax, "reduce_backward: max has no backward");
  const int64_t total = outer * n * inner;
  if (total == 0) return 0;
  const float scale = op == kMean ? 1.0f / static_cast<float>(n) : 1.0f;
  reduce_backward_k<<<grid_for(total, T), T, 0, stream()>>>(outer, n, inner, scale, gout, gx, acc != 0);
  return PC_LAUNCHED("reduce_backward") ? 0 : 1;
}

int plinth_cuda_softmax_forward(int64_t rows, int64_t n, const float* x, float* y) {
  if (rows == 0 || n == 0) return 0;
  softmax_forward_k<<<static_cast<unsigned>(rows), T, 0, stream()>>>(n, x, y);
  return PC_LAUNCHED("softmax_forward") ? 0 : 1;
}

int plinth_cuda_softmax_backward(int64_t rows, int64_t n, const float* y, const float* gy, float* gx, int acc) {
  if (rows == 0 || n == 0) return 0;
  softmax_backward_k<<<static_cast<unsigned>(rows), T, 0, stream()>>>(n, y, gy, gx, acc != 0);
  return PC_LAUNCHED("softmax_backward") ? 0 : 1;
}

int plinth_cuda_layernorm_forward(int64_t rows, int64_t C, const float* x, const float* w, const float* b, float eps, float* y,
                                  float* mean, float* rstd) {
  if (rows == 0) return 0;
  PC_REQUIRE(C > 0, "layernorm_forward: C must be > 0");
  layernorm_forward_k<<<static_cast<unsigned>(rows), T, 0, stream()>>>(C, x, w, b, eps, y, mean, rstd);
  return PC_LAUNCHED("layernorm_forward") ? 0 : 1;
}

int plinth_cuda_layernorm_backward(int64_t rows, int64_t C, const float* x, const float* w, const float* mean,
                                   const float* rstd, const float* gy, float* gx, float* gw, float* gb, int acc) {
  if (rows == 0) return 0;
  layernorm_backward_dx_k<<<static_cast<unsigned>(rows), T, 0, stream()>>>(C, x, w, mean, rstd, gy, gx, acc != 0);
  if (!PC_LAUNCHED("layernorm_backward")) return 1;
  const unsigned chunks = static_cast<unsigned>(rows < 64 ? rows : 64);
  dim3 grid(static_cast<unsigned>((C + T - 1) / T), chunks);
  layernorm_backward_dw_k<<<grid, T, 0, stream()>>>(rows, C, x, mean, rstd, gy, gw, gb);
  return PC_LAUNCHED("layernorm_backward (weights)") ? 0 : 1;
}

}  // extern "C"
