// Embedding gather / scatter-add and fused softmax cross-entropy (contracts of
// native/src/kernels/{embedding,cross_entropy}.inc).
//
// embedding:     ids [n] in [0, V) (checked by the caller), table/gtable [V, C], out/gout [n, C]
//                out[i] = table[ids[i]];  gtable[ids[i]] += gout[i]  (atomics: ids repeat)
// cross-entropy: logits/glogits [N, V], targets [N] (< 0 ignored), lse/losses [N]
//                lse_i = log sum_v exp(logits_iv); loss_i = lse_i - logits_i,t (0 if ignored);
//                total = sum_i loss_i (returned to the host)
//                glogits_iv = scale (exp(logits_iv - lse_i) - [v == t_i])  (0 rows when ignored)
// One block per row of logits.
#include "common.cuh"
#include "plinth_cuda.h"

namespace plinth_cuda {
namespace {

constexpr int T = 256;

__global__ void embedding_forward_k(int64_t n, int64_t C, const int32_t* ids, const float* table, float* out) {
  const int64_t total = n * C;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = t / C, c = t % C;
    out[t] = table[static_cast<int64_t>(ids[i]) * C + c];
  }
}

__global__ void embedding_backward_k(int64_t n, int64_t C, const int32_t* ids, const float* gout, float* gtable) {
  const int64_t total = n * C;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = t / C, c = t % C;
    atomicAdd(gtable + static_cast<int64_t>(ids[i]) * C + c, gout[t]);
  }
}

__global__ void ce_forward_k(int64_t V, const float* logits, const int32_t* targets, float* lse, float* losses, double* total) {
  __shared__ float smem[32];
  const int64_t r = blockIdx.x;
  const float* x = logits + r * V;
  float m = -INFINITY;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) m = fmaxf(m, x[i]);
  m = block_max(m, smem);
  float s = 0.0f;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) s += expf(x[i] - m);
  s = block_sum(s, smem);
  if (threadIdx.x == 0) {
    const float l = m + logf(s);
    lse[r] = l;
    const int32_t t = targets[r];
    const float loss = t < 0 ? 0.0f : l - x[t];
    losses[r] = loss;
    atomicAdd(total, static_cast<double>(loss));
  }
}

__global__ void ce_backward_k(int64_t V, const float* logits, const int32_t* targets, const float* lse, float scale, float* g) {
  const int64_t r = blockIdx.x;
  const float* x = logits + r * V;
  float* gr = g + r * V;
  const int32_t t = targets[r];
  const float l = lse[r];
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
    gr[i] = t < 0 ? 0.0f : scale * (expf(x[i] - l) - (i == t ? 1.0f : 0.0f));
  }
}

}  // namespace
}  // namespace plinth_cuda

using namespace plinth_cuda;

extern "C" {

int plinth_cuda_embedding_forward(int64_t n, int64_t C, int64_t V, const int32_t* ids, const float* table, float* out) {
  (void)V;
  if (n * C == 0) return 0;
  embedding_forward_k<<<grid_for(n * C, T), T, 0, stream()>>>(n, C, ids, table, out);
  return PC_LAUNCHED("embedding_forward") ? 0 : 1;
}

int plinth_cuda_embedding_backward(int64_t n, int64_t C, int64_t V, const int32_t* ids, const float* gout, float* gtable) {
  (void)V;
  if (n * C == 0) return 0;
  embedding_backward_k<<<grid_for(n * C, T), T, 0, stream()>>>(n, C, ids, gout, gtable);
  return PC_LAUNCHED("embedding_backward") ? 0 : 1;
}

int plinth_cuda_cross_entropy_forward(int64_t N, int64_t V, const float* logits, const int32_t* targets, float* lse,
                                      float* losses, double* total) {
  *total = 0.0;
  if (N == 0) return 0;
  double* acc = static_cast<double*>(plinth_cuda_alloc(sizeof(double)));
  if (acc == nullptr) return 1;
  int rc = PC_CHECK(cudaMemsetAsync(acc, 0, sizeof(double), stream())) ? 0 : 1;
  if (rc == 0) {
    ce_forward_k<<<static_cast<unsigned>(N), T, 0, stream()>>>(V, logits, targets, lse, losses, acc);
    rc = PC_LAUNCHED("cross_entropy_forward") ? plinth_cuda_download(total, acc, sizeof(double)) : 1;
  }
  plinth_cuda_free(acc);
  return rc;
}

int plinth_cuda_cross_entropy_backward(int64_t N, int64_t V, const float* logits, const int32_t* targets, const float* lse,
                                       float scale, float* glogits) {
  if (N == 0) return 0;
  ce_backward_k<<<static_cast<unsigned>(N), T, 0, stream()>>>(V, logits, targets, lse, scale, glogits);
  return PC_LAUNCHED("cross_entropy_backward") ? 0 : 1;
}

}  // extern "C"
