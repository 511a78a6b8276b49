// Shared pieces of the CUDA kernels: error reporting, the per-device stream, launch sizes and
// warp/block reductions. Every kernel runs on its device's one stream (see allocator.cu), so
// memory freed on the host can be reused by the next launch without events.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

namespace plinth_cuda {

// Op codes shared with native/src/kernels.h and src/native/index.ts.
enum { kAdd = 0, kSub = 1, kMul = 2, kDiv = 3 };
enum { kExp = 0, kLog = 1, kTanh = 2, kRelu = 3, kNeg = 4, kScale = 5, kAddScalar = 6, kSqrt = 7, kSigmoid = 8 };
enum { kSum = 0, kMean = 1, kMax = 2 };

constexpr int kMaxDims = 8;

// Records a failure for plinth_cuda_last_error(); returns false when `e` is an error.
bool ok(cudaError_t e, const char* what, const char* file, int line);
bool fail(const char* msg, const char* file, int line);
#define PC_CHECK(call) ::plinth_cuda::ok((call), #call, __FILE__, __LINE__)
#define PC_LAUNCHED(name) ::plinth_cuda::ok(cudaGetLastError(), name, __FILE__, __LINE__)
// In the C ABI's int-returning entry points: record the message and return 1.
#define PC_REQUIRE(cond, msg)                          \
  do {                                                 \
    if (!(cond)) {                                     \
      ::plinth_cuda::fail(msg, __FILE__, __LINE__);    \
      return 1;                                        \
    }                                                  \
  } while (0)

// The current device's stream (created on first use; one per device).
cudaStream_t stream();

inline unsigned grid_for(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  if (b > 65535LL * 32) b = 65535LL * 32;  // grid-stride loops cover the rest
  return static_cast<unsigned>(b < 1 ? 1 : b);
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum (or max) over the block; every thread gets the result. `smem` holds 32 floats.
__device__ __forceinline__ float block_sum(float v, float* smem) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  v = lane < warps ? smem[lane] : 0.0f;
  return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float* smem) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  v = lane < warps ? smem[lane] : -INFINITY;
  return warp_max(v);
}

}  // namespace plinth_cuda
