// The kernel table: the seam between the addon's argument checking and the
// per-ISA implementations (isa_avx512.cpp, isa_avx2.cpp, isa_portable.cpp), and
// the seam where a CUDA backend would plug in with its own table.
//
// Every pointer is caller-owned; kernels never allocate tensor memory. Arguments
// have already been validated by addon.cpp (sizes, strides, index ranges).
// "acc" flags select out += result (true) or out = result (false).
#pragma once
#include <cstdint>

namespace plinth {

enum BinaryOp : int { kAdd = 0, kSub = 1, kMul = 2, kDiv = 3 };
enum UnaryOp : int { kExp = 0, kLog = 1, kTanh = 2, kRelu = 3, kNeg = 4, kScale = 5, kAddScalar = 6, kSqrt = 7, kSigmoid = 8 };
enum ReduceOp : int { kSum = 0, kMean = 1, kMax = 2 };

// C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b]; row-major, op = transpose or not.
// op(A) is M x K: A(i,k) = ta ? A[k*lda+i] : A[i*lda+k]; op(B) is K x N likewise.
struct GemmArgs {
  bool ta, tb;
  int64_t M, N, K, batch;
  float alpha, beta;
  const float* A; int64_t lda, strideA;
  const float* B; int64_t ldb, strideB;
  float* C; int64_t ldc, strideC;
  // Optional fused extras (nullptr when unused):
  //   bias [N]: added to every row of C:  C = alpha * op(A) op(B) + beta * C + bias
  //   colsum [N]: colsum[j] += sum over k (and batches) of op(B)[k][j]  (a bias gradient when
  //   op(B) is dY: computed while op(B) is packed, so dY is not read a second time)
  const float* bias;
  float* colsum;
};

// Causal (or full) multi-head attention over rows of q/k/v with explicit strides:
// element (b, t, h, d) of q lives at q[b*q_bs + t*q_ts + h*HS + d]; likewise k, v, o.
// Query row t attends to key rows j <= t + (Tk - Tq) when causal.
// lse[(b*NH + h)*Tq + t] holds each row's log-sum-exp (saved for the backward).
// Gradients gq/gk/gv use the same strides as q/k/v.
struct AttentionArgs {
  int64_t B, Tq, Tk, NH, HS;
  float scale;
  bool causal;
  const float* q; int64_t q_bs, q_ts;
  const float* k; int64_t k_bs, k_ts;
  const float* v; int64_t v_bs, v_ts;
  float* o; int64_t o_bs, o_ts;
  float* lse;
  // backward only
  const float* go;
  float* gq; float* gk; float* gv;
  bool acc;
};

struct KernelTable {
  const char* isa;
  void (*gemm)(const GemmArgs&);
  void (*binary_forward)(int op, int ndim, const int64_t* shape, const float* a, const int64_t* sa,
                         const float* b, const int64_t* sb, float* out);
  void (*binary_backward)(int op, int ndim, const int64_t* shape, const float* a, const int64_t* sa,
                          const float* b, const int64_t* sb, const float* gout, float* ga, float* gb);
  void (*unary_forward)(int op, int64_t n, const float* x, float* y, float alpha);
  void (*unary_backward)(int op, int64_t n, const float* x, const float* y, const float* gy, float* gx,
                         float alpha, bool acc);
  void (*reduce_forward)(int op, int64_t outer, int64_t n, int64_t inner, const float* x, float* out);
  void (*reduce_backward)(int op, int64_t outer, int64_t n, int64_t inner, const float* gout, float* gx,
                          bool acc);
  void (*softmax_forward)(int64_t rows, int64_t n, const float* x, float* y);
  void (*softmax_backward)(int64_t rows, int64_t n, const float* y, const float* gy, float* gx, bool acc);
  void (*layernorm_forward)(int64_t rows, int64_t C, const float* x, const float* w, const float* b,
                            float eps, float* y, float* mean, float* rstd);
  void (*layernorm_backward)(int64_t rows, int64_t C, const float* x, const float* w, const float* mean,
                             const float* rstd, const float* gy, float* gx, float* gw, float* gb,
                             bool acc);
  void (*gelu_forward)(int64_t n, const float* x, float* y);
  void (*gelu_backward)(int64_t n, const float* x, const float* gy, float* gx, bool acc);
  void (*embedding_forward)(int64_t n, int64_t C, const int32_t* ids, const float* table, float* out);
  void (*embedding_backward)(int64_t n, int64_t C, const int32_t* ids, const float* gout, float* gtable);
  void (*attention_forward)(const AttentionArgs&);
  void (*attention_backward)(const AttentionArgs&);
  double (*cross_entropy_forward)(int64_t N, int64_t V, const float* logits, const int32_t* targets,
                                  float* lse, float* losses);
  void (*cross_entropy_backward)(int64_t N, int64_t V, const float* logits, const int32_t* targets,
                                 const float* lse, float scale, float* glogits);
  void (*adamw_step)(int64_t n, float* p, const float* g, float* m, float* v, float lr, float beta1,
                     float beta2, float eps, float weight_decay, float bias_correction1,
                     float bias_correction2);
  double (*sum_squares)(int64_t n, const float* x);
  void (*axpy)(int64_t n, float alpha, const float* x, float* y);  // y += alpha * x
  void (*fill)(int64_t n, float* x, float value);
  void (*copy_strided)(int ndim, const int64_t* shape, const float* src, const int64_t* strides, float* dst);
  void (*dropout_forward)(int64_t n, const float* x, float* y, float p, uint64_t seed);
  void (*dropout_backward)(int64_t n, const float* gy, float* gx, float p, uint64_t seed, bool acc);
  double (*fma_peak)(int64_t iterations);  // returns FLOPs executed by the calling thread
};

const KernelTable& table_avx512();
const KernelTable& table_avx2();
const KernelTable& table_portable();

// Active table (runtime CPU dispatch, overridable by PLINTH_ISA or set_isa).
const KernelTable& kernels();
bool isa_supported(const char* name);
bool set_isa(const char* name);

}  // namespace plinth

// Builds the table of one ISA namespace; every kernel file defines the functions named here.
#define PLINTH_DEFINE_TABLE(ns)                                                                  \
  static const KernelTable k_table_##ns = {                                                      \
      #ns, &ns::gemm, &ns::binary_forward, &ns::binary_backward, &ns::unary_forward,             \
      &ns::unary_backward, &ns::reduce_forward, &ns::reduce_backward, &ns::softmax_forward,      \
      &ns::softmax_backward, &ns::layernorm_forward, &ns::layernorm_backward,                    \
      &ns::gelu_forward, &ns::gelu_backward, &ns::embedding_forward, &ns::embedding_backward,    \
      &ns::attention_forward, &ns::attention_backward, &ns::cross_entropy_forward,               \
      &ns::cross_entropy_backward, &ns::adamw_step, &ns::sum_squares, &ns::axpy, &ns::fill,      \
      &ns::copy_strided, &ns::dropout_forward, &ns::dropout_backward, &ns::fma_peak};            \
  const KernelTable& table_##ns() { return k_table_##ns; }
