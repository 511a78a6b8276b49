// Element-wise kernels, pairs of forward and backward, with the CPU kernels' contracts
// (native/src/kernels/elementwise.inc, gelu.inc, dropout.inc, adamw.inc).
//
// Shapes: binary ops iterate the output shape [d0..d(ndim-1)] (contiguous out); sa/sb are the
// operands' strides in that index space, 0 along broadcast dimensions.
//   binary backward: ga[i·sa] += dout/da · gout[i] (likewise gb); atomics where an operand is
//   broadcast (its gradient sums over the broadcast dimensions), plain adds otherwise
//   unary:  y = f(x); gx (+)= f'(x) gy        gelu: y = x sigmoid(2u), u = sqrt(2/pi)(x + 0.044715 x^3)
//   dropout: keep iff hash(seed, i) >= p (the CPU's hash, so masks match bit for bit)
//   adamw:  m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr (m/bc1 / (sqrt(v/bc2) + eps) + wd p)
// Legend: n elements.
#include "common.cuh"
#include "plinth_cuda.h"

namespace plinth_cuda {
namespace {

struct Dims {
  int ndim;
  int64_t shape[kMaxDims], sa[kMaxDims], sb[kMaxDims];
};

__device__ __forceinline__ void offsets(const Dims& d, int64_t i, int64_t* oa, int64_t* ob) {
  int64_t a = 0, b = 0;
  for (int k = d.ndim - 1; k >= 0; k--) {
    const int64_t idx = i % d.shape[k];
    i /= d.shape[k];
    a += idx * d.sa[k];
    b += idx * d.sb[k];
  }
  *oa = a;
  *ob = b;
}

__device__ __forceinline__ float binary_apply(int op, float a, float b) {
  switch (op) {
    case kAdd: return a + b;
    case kSub: return a - b;
    case kMul: return a * b;
    default: return a / b;
  }
}

__global__ void binary_forward_k(int op, Dims d, int64_t n, const float* a, const float* b, float* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t oa, ob;
    offsets(d, i, &oa, &ob);
    out[i] = binary_apply(op, a[oa], b[ob]);
  }
}

__global__ void binary_backward_k(int op, Dims d, int64_t n, const float* a, const float* b, const float* g, float* ga,
                                  float* gb, bool atomic_a, bool atomic_b) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t oa, ob;
    offsets(d, i, &oa, &ob);
    const float x = a[oa], z = b[ob], gi = g[i];
    float da, db;
    switch (op) {
      case kAdd: da = gi; db = gi; break;
      case kSub: da = gi; db = -gi; break;
      case kMul: da = gi * z; db = gi * x; break;
      default: da = gi / z; db = -gi * x / (z * z); break;
    }
    if (ga != nullptr) {
      if (atomic_a) atomicAdd(ga + oa, da); else ga[oa] += da;
    }
    if (gb != nullptr) {
      if (atomic_b) atomicAdd(gb + ob, db); else gb[ob] += db;
    }
  }
}

__device__ __forceinline__ float unary_apply(int op, float x, float alpha) {
  switch (op) {
    case kExp: return expf(x);
    case kLog: return logf(x);
    case kTanh: return tanhf(x);
    case kRelu: return x > 0.0f ? x : 0.0f;
    case kNeg: return -x;
    case kScale: return alpha * x;
    case kAddScalar: return x + alpha;
    case kSqrt: return sqrtf(x);
    default: return 1.0f / (1.0f + expf(-x));
  }
}

__device__ __forceinline__ float unary_grad(int op, float x, float y, float alpha) {
  switch (op) {
    case kExp: return y;
    case kLog: return 1.0f / x;
    case kTanh: return 1.0f - y * y;
    case kRelu: return x > 0.0f ? 1.0f : 0.0f;
    case kNeg: return -1.0f;
    case kScale: return alpha;
    case kAddScalar: return 1.0f;
    case kSqrt: return 0.5f / y;
    default: return y * (1.0f - y);
  }
}

#define GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

__global__ void unary_forward_k(int op, int64_t n, const float* x, float* y, float alpha) {
  GRID_STRIDE(i, n) y[i] = unary_apply(op, x[i], alpha);
}

__global__ void unary_backward_k(int op, int64_t n, const float* x, const float* y, const float* gy, float* gx, float alpha,
                                 bool acc) {
  GRID_STRIDE(i, n) {
    const float d = unary_grad(op, x[i], y[i], alpha) * gy[i];
    gx[i] = acc ? gx[i] + d : d;
  }
}

constexpr float kGeluA = 0.7978845608028654f, kGeluB = 0.044715f;

__device__ __forceinline__ float gelu_sig(float v) {
  const float u = kGeluA * (v + kGeluB * v * v * v);
  return 1.0f / (1.0f + __expf(-2.0f * u));
}

__global__ void gelu_forward_k(int64_t n, const float* x, float* y) {
  GRID_STRIDE(i, n) y[i] = x[i] * gelu_sig(x[i]);
}

__global__ void gelu_backward_k(int64_t n, const float* x, const float* gy, float* gx, bool acc) {
  GRID_STRIDE(i, n) {
    const float v = x[i], s = gelu_sig(v);
    const float du = kGeluA * (1.0f + 3.0f * kGeluB * v * v);
    const float d = gy[i] * (s + v * 2.0f * s * (1.0f - s) * du);
    gx[i] = acc ? gx[i] + d : d;
  }
}

__device__ __forceinline__ bool dropout_keep(uint64_t seed, int64_t i, float p) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(i + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f) >= p;
}

__global__ void dropout_forward_k(int64_t n, const float* x, float* y, float p, uint64_t seed) {
  const float s = 1.0f / (1.0f - p);
  GRID_STRIDE(i, n) y[i] = dropout_keep(seed, i, p) ? x[i] * s : 0.0f;
}

__global__ void dropout_backward_k(int64_t n, const float* gy, float* gx, float p, uint64_t seed, bool acc) {
  const float s = 1.0f / (1.0f - p);
  GRID_STRIDE(i, n) {
    const float d = dropout_keep(seed, i, p) ? gy[i] * s : 0.0f;
    gx[i] = acc ? gx[i] + d : d;
  }
}

__global__ void fill_k(int64_t n, float* x, float v) {
  GRID_STRIDE(i, n) x[i] = v;
}

__global__ void axpy_k(int64_t n, float alpha, const float* x, float* y) {
  GRID_STRIDE(i, n) y[i] += alpha * x[i];
}

__global__ void copy_strided_k(Dims d, int64_t n, const float* src, float* dst) {
  GRID_STRIDE(i, n) {
    int64_t os, unused;
    offsets(d, i, &os, &unused);
    dst[i] = src[os];
  }
}

__global__ void sum_squares_k(int64_t n, const float* x, double* out) {
  __shared__ float smem[32];
  float s = 0.0f;
  GRID_STRIDE(i, n) s += x[i] * x[i];
  s = block_sum(s, smem);
  if (threadIdx.x == 0) atomicAdd(out, static_cast<double>(s));
}

__global__ void adamw_k(int64_t n, float* p, const float* g, float* m, float* v, float lr, float b1, float b2, float eps,
                        float wd, float inv_bc1, float inv_bc2) {
  GRID_STRIDE(i, n) {
    const float gi = g[i];
    const float mi = b1 * m[i] + (1.0f - b1) * gi;
    const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] -= lr * (mi * inv_bc1 / (sqrtf(vi * inv_bc2) + eps) + wd * p[i]);
  }
}

__global__ void to_bf16_k(int64_t n, const float* x, __nv_bfloat16* y) {
  GRID_STRIDE(i, n) y[i] = __float2bfloat16(x[i]);
}

__global__ void from_bf16_k(int64_t n, const __nv_bfloat16* x, float* y) {
  GRID_STRIDE(i, n) y[i] = __bfloat162float(x[i]);
}

bool dims_of(int ndim, const int64_t* shape, const int64_t* sa, const int64_t* sb, Dims* d, int64_t* n) {
  if (ndim < 0 || ndim > kMaxDims) return fail("at most 8 dimensions", __FILE__, __LINE__);
  d->ndim = ndim;
  *n = 1;
  for (int k = 0; k < ndim; k++) {
    d->shape[k] = shape[k];
    d->sa[k] = sa[k];
    d->sb[k] = sb == nullptr ? 0 : sb[k];
    *n *= shape[k];
  }
  return true;
}

bool broadcast_along(const Dims& d, const int64_t* s) {
  for (int k = 0; k < d.ndim; k++)
    if (d.shape[k] > 1 && s[k] == 0) return true;
  return false;
}

constexpr int T = 256;

}  // namespace
}  // namespace plinth_cuda

using namespace plinth_cuda;

#define DONE(name) return PC_LAUNCHED(name) ? 0 : 1

extern "C" {

int plinth_cuda_binary_forward(int op, int ndim, const int64_t* shape, const int64_t* sa, const int64_t* sb, const float* a,
                               const float* b, float* out) {
  Dims d;
  int64_t n;
  if (!dims_of(ndim, shape, sa, sb, &d, &n)) return 1;
  if (n == 0) return 0;
  binary_forward_k<<<grid_for(n, T), T, 0, stream()>>>(op, d, n, a, b, out);
  DONE("binary_forward");
}

int plinth_cuda_binary_backward(int op, int ndim, const int64_t* shape, const int64_t* sa, const int64_t* sb, const float* a,
                                const float* b, const float* gout, float* ga, float* gb) {
  Dims d;
  int64_t n;
  if (!dims_of(ndim, shape, sa, sb, &d, &n)) return 1;
  if (n == 0) return 0;
  binary_backward_k<<<grid_for(n, T), T, 0, stream()>>>(op, d, n, a, b, gout, ga, gb, broadcast_along(d, d.sa),
                                                        broadcast_along(d, d.sb));
  DONE("binary_backward");
}

int plinth_cuda_unary_forward(int op, int64_t n, const float* x, float* y, float alpha) {
  if (n == 0) return 0;
  unary_forward_k<<<grid_for(n, T), T, 0, stream()>>>(op, n, x, y, alpha);
  DONE("unary_forward");
}

int plinth_cuda_unary_backward(int op, int64_t n, const float* x, const float* y, const float* gy, float* gx, float alpha,
                               int acc) {
  if (n == 0) return 0;
  unary_backward_k<<<grid_for(n, T), T, 0, stream()>>>(op, n, x, y, gy, gx, alpha, acc != 0);
  DONE("unary_backward");
}

int plinth_cuda_gelu_forward(int64_t n, const float* x, float* y) {
  if (n == 0) return 0;
  gelu_forward_k<<<grid_for(n, T), T, 0, stream()>>>(n, x, y);
  DONE("gelu_forward");
}

int plinth_cuda_gelu_backward(int64_t n, const float* x, const float* gy, float* gx, int acc) {
  if (n == 0) return 0;
  gelu_backward_k<<<grid_for(n, T), T, 0, stream()>>>(n, x, gy, gx, acc != 0);
  DONE("gelu_backward");
}

int plinth_cuda_dropout_forward(int64_t n, const float* x, float* y, float p, uint64_t seed) {
  if (n == 0) return 0;
  dropout_forward_k<<<grid_for(n, T), T, 0, stream()>>>(n, x, y, p, seed);
  DONE("dropout_forward");
}

int plinth_cuda_dropout_backward(int64_t n, const float* gy, float* gx, float p, uint64_t seed, int acc) {
  if (n == 0) return 0;
  dropout_backward_k<<<grid_for(n, T), T, 0, stream()>>>(n, gy, gx, p, seed, acc != 0);
  DONE("dropout_backward");
}

int plinth_cuda_fill(int64_t n, float* x, float value) {
  if (n == 0) return 0;
  fill_k<<<grid_for(n, T), T, 0, stream()>>>(n, x, value);
  DONE("fill");
}

int plinth_cuda_axpy(int64_t n, float alpha, const float* x, float* y) {
  if (n == 0) return 0;
  axpy_k<<<grid_for(n, T), T, 0, stream()>>>(n, alpha, x, y);
  DONE("axpy");
}

int plinth_cuda_copy_strided(int ndim, const int64_t* shape, const int64_t* strides, const float* src, float* dst) {
  Dims d;
  int64_t n;
  if (!dims_of(ndim, shape, strides, nullptr, &d, &n)) return 1;
  if (n == 0) return 0;
  copy_strided_k<<<grid_for(n, T), T, 0, stream()>>>(d, n, src, dst);
  DONE("copy_strided");
}

int plinth_cuda_sum_squares(int64_t n, const float* x, double* out) {
  *out = 0.0;
  if (n == 0) return 0;
  double* acc = static_cast<double*>(plinth_cuda_alloc(sizeof(double)));
  if (acc == nullptr) return 1;
  int rc = PC_CHECK(cudaMemsetAsync(acc, 0, sizeof(double), stream())) ? 0 : 1;
  if (rc == 0) {
    const unsigned g = grid_for(n, T) < 1024 ? grid_for(n, T) : 1024;
    sum_squares_k<<<g, T, 0, stream()>>>(n, x, acc);
    rc = PC_LAUNCHED("sum_squares") ? plinth_cuda_download(out, acc, sizeof(double)) : 1;
  }
  plinth_cuda_free(acc);
  return rc;
}

int plinth_cuda_adamw_step(int64_t n, float* p, const float* g, float* m, float* v, float lr, float beta1, float beta2,
                           float eps, float weight_decay, float bc1, float bc2) {
  if (n == 0) return 0;
  adamw_k<<<grid_for(n, T), T, 0, stream()>>>(n, p, g, m, v, lr, beta1, beta2, eps, weight_decay, 1.0f / bc1, 1.0f / bc2);
  DONE("adamw_step");
}

int plinth_cuda_to_bf16(int64_t n, const float* x, void* y) {
  if (n == 0) return 0;
  to_bf16_k<<<grid_for(n, T), T, 0, stream()>>>(n, x, static_cast<__nv_bfloat16*>(y));
  DONE("to_bf16");
}

int plinth_cuda_from_bf16(int64_t n, const void* x, float* y) {
  if (n == 0) return 0;
  from_bf16_k<<<grid_for(n, T), T, 0, stream()>>>(n, static_cast<const __nv_bfloat16*>(x), y);
  DONE("from_bf16");
}

}  // extern "C"
