// GEMM: C = alpha op(A) op(B) + beta C (+ bias row), row-major, batched by strides; colsum
// accumulates op(B)'s column sums (a bias gradient for free, as the CPU kernel does).
//
// Legend: M, N, K the product's sizes; lda/ldb/ldc row strides; sA/sB/sC batch strides.
// Kernels:
//   sgemm_k     fp32 on CUDA cores, 64x64 tiles (4x4 per thread): the fp32 path without cuBLASLt
//   hgemm_k     bf16 tensor cores (WMMA 16x16x16, fp32 accumulation), 128x128x32 tiles, 8 warps
//               of 32x64: the project's own tensor-core GEMM, for autocast without cuBLASLt
// plinth_cuda_gemm picks: autocast -> operands to bf16, then cuBLASLt bf16 (or hgemm_k);
// otherwise cuBLASLt fp32 (or sgemm_k). Bias and colsum run as epilogue kernels where the
// library path cannot fuse them.
#include <mma.h>

#include "common.cuh"
#include "plinth_cuda.h"

namespace plinth_cuda {
bool cublaslt_loaded();
bool cublaslt_gemm(bool bf16, bool ta, bool tb, int64_t M, int64_t N, int64_t K, int64_t batch, float alpha, float beta,
                   const void* A, int64_t lda, int64_t sA, const void* B, int64_t ldb, int64_t sB, float* C, int64_t ldc,
                   int64_t sC);

namespace {

bool autocast = false;
int gemm_backend = 0;  // 0 auto, 1 the addon's own kernels, 2 cuBLASLt

bool use_lt(int64_t K) { return K > 0 && gemm_backend != 1 && cublaslt_loaded(); }

struct G {
  bool ta, tb;
  int64_t M, N, K, lda, ldb, ldc, sA, sB, sC;
  float alpha, beta;
  const float* bias;
};

constexpr int SB = 64, SK = 16;

__global__ void __launch_bounds__(256) sgemm_k(G g, const float* A, const float* B, float* C) {
  __shared__ float As[SK][SB + 4];
  __shared__ float Bs[SK][SB + 4];
  A += blockIdx.z * g.sA;
  B += blockIdx.z * g.sB;
  C += blockIdx.z * g.sC;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t m0 = blockIdx.y * int64_t(SB), n0 = blockIdx.x * int64_t(SB);
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < g.K; k0 += SK) {
    for (int idx = threadIdx.x; idx < SB * SK; idx += 256) {
      const int r = idx / SK, c = idx % SK;  // A: row r of the tile, depth c
      const int64_t m = m0 + r, k = k0 + c;
      As[c][r] = (m < g.M && k < g.K) ? (g.ta ? A[k * g.lda + m] : A[m * g.lda + k]) : 0.0f;
      const int kr = idx / SB, nc = idx % SB;  // B: depth kr, column nc
      const int64_t kk = k0 + kr, n = n0 + nc;
      Bs[kr][nc] = (kk < g.K && n < g.N) ? (g.tb ? B[n * g.ldb + kk] : B[kk * g.ldb + n]) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int c = 0; c < SK; c++) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; i++) a[i] = As[c][ty * 4 + i];
#pragma unroll
      for (int j = 0; j < 4; j++) b[j] = Bs[c][tx * 4 + j];
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int64_t m = m0 + ty * 4 + i;
    if (m >= g.M) continue;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int64_t n = n0 + tx * 4 + j;
      if (n >= g.N) continue;
      float v = g.alpha * acc[i][j];
      if (g.beta != 0.0f) v += g.beta * C[m * g.ldc + n];
      if (g.bias != nullptr) v += g.bias[n];
      C[m * g.ldc + n] = v;
    }
  }
}

constexpr int HB = 128, HK = 32;

__global__ void __launch_bounds__(256) hgemm_k(G g, const __nv_bfloat16* A, const __nv_bfloat16* B, float* C) {
  using namespace nvcuda;
  // WMMA loads and stores need 256-bit aligned pointers: every fragment offset below is a multiple of 32 bytes.
  __shared__ __align__(128) __nv_bfloat16 As[HB][HK + 8];
  __shared__ __align__(128) __nv_bfloat16 Bs[HK][HB + 8];
  __shared__ __align__(128) float stage[8][16 * 16];
  A += blockIdx.z * g.sA;
  B += blockIdx.z * g.sB;
  C += blockIdx.z * g.sC;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wm = warp / 2, wn = warp % 2;  // 4 x 2 warps, each 32 rows x 64 columns
  const int64_t m0 = blockIdx.y * int64_t(HB), n0 = blockIdx.x * int64_t(HB);
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][4];
#pragma unroll
  for (int i = 0; i < 2; i++)
#pragma unroll
    for (int j = 0; j < 4; j++) wmma::fill_fragment(acc[i][j], 0.0f);
  const __nv_bfloat16 zero = __float2bfloat16(0.0f);
  for (int64_t k0 = 0; k0 < g.K; k0 += HK) {
    for (int idx = threadIdx.x; idx < HB * HK; idx += 256) {
      // A tile [HB][HK]: consecutive threads walk k when A is row-major, m when transposed.
      int r, c;
      if (g.ta) { r = idx % HB; c = idx / HB; } else { r = idx / HK; c = idx % HK; }
      const int64_t m = m0 + r, k = k0 + c;
      As[r][c] = (m < g.M && k < g.K) ? (g.ta ? A[k * g.lda + m] : A[m * g.lda + k]) : zero;
      int kr, nc;
      if (g.tb) { kr = idx % HK; nc = idx / HK; } else { kr = idx / HB; nc = idx % HB; }
      const int64_t kk = k0 + kr, n = n0 + nc;
      Bs[kr][nc] = (kk < g.K && n < g.N) ? (g.tb ? B[n * g.ldb + kk] : B[kk * g.ldb + n]) : zero;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < HK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fb[4];
#pragma unroll
      for (int i = 0; i < 2; i++) wmma::load_matrix_sync(fa[i], &As[wm * 32 + i * 16][kk], HK + 8);
#pragma unroll
      for (int j = 0; j < 4; j++) wmma::load_matrix_sync(fb[j], &Bs[kk][wn * 64 + j * 16], HB + 8);
#pragma unroll
      for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();
  }
  float* st = stage[warp];
#pragma unroll
  for (int i = 0; i < 2; i++) {
#pragma unroll
    for (int j = 0; j < 4; j++) {
      wmma::store_matrix_sync(st, acc[i][j], 16, wmma::mem_row_major);
      __syncwarp();
      for (int e = lane; e < 256; e += 32) {
        const int64_t m = m0 + wm * 32 + i * 16 + e / 16, n = n0 + wn * 64 + j * 16 + e % 16;
        if (m < g.M && n < g.N) {
          float v = g.alpha * st[e];
          if (g.beta != 0.0f) v += g.beta * C[m * g.ldc + n];
          if (g.bias != nullptr) v += g.bias[n];
          C[m * g.ldc + n] = v;
        }
      }
      __syncwarp();
    }
  }
}

// C[b, m, :] += bias (after a library GEMM).
__global__ void add_bias_k(int64_t batch, int64_t M, int64_t N, int64_t ldc, int64_t sC, const float* bias, float* C) {
  const int64_t total = batch * M * N;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = t % N, m = (t / N) % M, b = t / (M * N);
    C[b * sC + m * ldc + n] += bias[n];
  }
}

// colsum[n] += sum over batches and k of op(B)(k, n).
__global__ void colsum_k(bool tb, int64_t batch, int64_t K, int64_t N, const float* B, int64_t ldb, int64_t sB, float* colsum) {
  const int64_t n = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (n >= N) return;
  float s = 0.0f;
  for (int64_t b = 0; b < batch; b++)
    for (int64_t k = 0; k < K; k++) s += tb ? B[b * sB + n * ldb + k] : B[b * sB + k * ldb + n];
  colsum[n] += s;
}

// Elements a strided operand spans: (batch-1)·stride + (rows-1)·ld + cols.
int64_t span(int64_t batch, int64_t stride, int64_t rows, int64_t cols, int64_t ld) {
  return (batch - 1) * stride + (rows - 1) * ld + cols;
}

bool own_bf16(const G& g, int64_t batch, const void* A, const void* B, float* C) {
  dim3 grid(static_cast<unsigned>((g.N + HB - 1) / HB), static_cast<unsigned>((g.M + HB - 1) / HB), static_cast<unsigned>(batch));
  hgemm_k<<<grid, 256, 0, stream()>>>(g, static_cast<const __nv_bfloat16*>(A), static_cast<const __nv_bfloat16*>(B), C);
  return PC_LAUNCHED("gemm (bf16 tensor cores)");
}

}  // namespace
}  // namespace plinth_cuda

using namespace plinth_cuda;

extern "C" {

int plinth_cuda_set_autocast(int on) {
  autocast = on != 0;
  return 0;
}

int plinth_cuda_set_gemm_backend(int backend) {
  PC_REQUIRE(backend >= 0 && backend <= 2, "set_gemm_backend: 0 auto, 1 own kernels, 2 cuBLASLt");
  PC_REQUIRE(backend != 2 || cublaslt_loaded(), "set_gemm_backend: cuBLASLt is not loaded");
  gemm_backend = backend;
  return 0;
}

int plinth_cuda_gemm_bf16(int backend, int ta, int tb, int64_t M, int64_t N, int64_t K, int64_t batch, float alpha, float beta,
                          const void* A, int64_t lda, int64_t sA, const void* B, int64_t ldb, int64_t sB, float* C, int64_t ldc,
                          int64_t sC) {
  if (batch <= 0 || M <= 0 || N <= 0) return 0;
  PC_REQUIRE(batch <= 65535, "gemm_bf16: at most 65535 batches");
  const bool lt = backend == 2 || (backend == 0 && K > 0 && cublaslt_loaded());
  if (lt) return cublaslt_gemm(true, ta != 0, tb != 0, M, N, K, batch, alpha, beta, A, lda, sA, B, ldb, sB, C, ldc, sC) ? 0 : 1;
  G g{ta != 0, tb != 0, M, N, K, lda, ldb, ldc, sA, sB, sC, alpha, beta, nullptr};
  return own_bf16(g, batch, A, B, C) ? 0 : 1;
}

int plinth_cuda_gemm(int ta, int tb, int64_t M, int64_t N, int64_t K, int64_t batch, float alpha, float beta, const float* A,
                     int64_t lda, int64_t sA, const float* B, int64_t ldb, int64_t sB, float* C, int64_t ldc, int64_t sC,
                     const float* bias, float* colsum) {
  if (batch <= 0 || N <= 0) return 0;
  PC_REQUIRE(batch <= 65535, "gemm: at most 65535 batches");
  if (colsum != nullptr && K > 0) {
    colsum_k<<<grid_for(N, 256), 256, 0, stream()>>>(tb != 0, batch, K, N, B, ldb, sB, colsum);
    if (!PC_LAUNCHED("gemm (colsum)")) return 1;
  }
  if (M <= 0) return 0;
  G g{ta != 0, tb != 0, M, N, K, lda, ldb, ldc, sA, sB, sC, alpha, beta, bias};
  bool done = false;
  if (autocast && K > 0) {
    const int64_t na = span(batch, sA, ta ? K : M, ta ? M : K, lda), nb = span(batch, sB, tb ? N : K, tb ? K : N, ldb);
    void* a16 = plinth_cuda_alloc(na * 2);
    void* b16 = plinth_cuda_alloc(nb * 2);
    bool good = a16 != nullptr && b16 != nullptr && plinth_cuda_to_bf16(na, A, a16) == 0 && plinth_cuda_to_bf16(nb, B, b16) == 0;
    if (good) {
      if (use_lt(K)) good = cublaslt_gemm(true, g.ta, g.tb, M, N, K, batch, alpha, beta, a16, lda, sA, b16, ldb, sB, C, ldc, sC);
      else good = own_bf16(g, batch, a16, b16, C);
    }
    plinth_cuda_free(a16);
    plinth_cuda_free(b16);
    if (!good) return 1;
    done = !use_lt(K);  // the own kernel fused the bias
  } else if (use_lt(K)) {
    if (!cublaslt_gemm(false, g.ta, g.tb, M, N, K, batch, alpha, beta, A, lda, sA, B, ldb, sB, C, ldc, sC)) return 1;
  } else {
    dim3 grid(static_cast<unsigned>((N + SB - 1) / SB), static_cast<unsigned>((M + SB - 1) / SB), static_cast<unsigned>(batch));
    sgemm_k<<<grid, 256, 0, stream()>>>(g, A, B, C);
    return PC_LAUNCHED("gemm (fp32)") ? 0 : 1;
  }
  if (bias != nullptr && !done) {
    add_bias_k<<<grid_for(batch * M * N, 256), 256, 0, stream()>>>(batch, M, N, ldc, sC, bias, C);
    if (!PC_LAUNCHED("gemm (bias)")) return 1;
  }
  return 0;
}

}  // extern "C"
