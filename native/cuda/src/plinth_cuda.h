/* The CUDA backend's C ABI: every kernel callable without Node (Python's ctypes, C).
 *
 * Pointers named like tensors are device pointers from plinth_cuda_alloc; sizes are element
 * counts. Every function returns 0 on success and 1 on failure (plinth_cuda_last_error() says
 * why), except where a value is returned. Kernels are enqueued on the current device's one
 * stream; results that come back to the host (cross-entropy's total, sum of squares) wait
 * for it. Contracts (shapes, accumulation, layouts) are those of the CPU kernels in
 * native/src/kernels/*.inc; each .cu file opens with its shape legend.
 */
#ifndef PLINTH_CUDA_H
#define PLINTH_CUDA_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PLINTH_API __attribute__((visibility("default")))

/* runtime and memory (allocator.cu) */
PLINTH_API const char* plinth_cuda_last_error(void);
PLINTH_API int plinth_cuda_device_count(void);
PLINTH_API int plinth_cuda_set_device(int device);
/* info: total bytes, free bytes, major, minor, multiprocessors */
PLINTH_API int plinth_cuda_device_info(int device, char* name, int name_len, int64_t* info);
PLINTH_API void* plinth_cuda_alloc(int64_t bytes);
PLINTH_API int plinth_cuda_free(void* p);
PLINTH_API int plinth_cuda_empty_cache(void);
/* out: bytes in use, bytes cached, peak bytes in use, cudaMalloc calls */
PLINTH_API int plinth_cuda_memory_stats(int64_t* out);
PLINTH_API int plinth_cuda_synchronize(void);
/* Runs this device's work on `stream` (e.g. PyTorch's current stream; NULL is the legacy default
 * stream) instead of the addon's own; everything stays on one stream, as the allocator needs. */
PLINTH_API int plinth_cuda_set_stream(void* stream);
PLINTH_API int plinth_cuda_upload(void* dst, const void* src, int64_t bytes);
PLINTH_API int plinth_cuda_download(void* dst, const void* src, int64_t bytes);
PLINTH_API int plinth_cuda_copy(void* dst, const void* src, int64_t bytes);

/* element-wise (elementwise.cu) */
PLINTH_API int plinth_cuda_binary_forward(int op, int ndim, const int64_t* shape, const int64_t* sa, const int64_t* sb,
                                          const float* a, const float* b, float* out);
PLINTH_API int plinth_cuda_binary_backward(int op, int ndim, const int64_t* shape, const int64_t* sa, const int64_t* sb,
                                           const float* a, const float* b, const float* gout, float* ga, float* gb);
PLINTH_API int plinth_cuda_unary_forward(int op, int64_t n, const float* x, float* y, float alpha);
PLINTH_API int plinth_cuda_unary_backward(int op, int64_t n, const float* x, const float* y, const float* gy, float* gx,
                                          float alpha, int acc);
PLINTH_API int plinth_cuda_gelu_forward(int64_t n, const float* x, float* y);
PLINTH_API int plinth_cuda_gelu_backward(int64_t n, const float* x, const float* gy, float* gx, int acc);
PLINTH_API int plinth_cuda_dropout_forward(int64_t n, const float* x, float* y, float p, uint64_t seed);
PLINTH_API int plinth_cuda_dropout_backward(int64_t n, const float* gy, float* gx, float p, uint64_t seed, int acc);
PLINTH_API int plinth_cuda_fill(int64_t n, float* x, float value);
PLINTH_API int plinth_cuda_axpy(int64_t n, float alpha, const float* x, float* y);
PLINTH_API int plinth_cuda_copy_strided(int ndim, const int64_t* shape, const int64_t* strides, const float* src, float* dst);
PLINTH_API int plinth_cuda_sum_squares(int64_t n, const float* x, double* out);
PLINTH_API int plinth_cuda_adamw_step(int64_t n, float* p, const float* g, float* m, float* v, float lr, float beta1,
                                      float beta2, float eps, float weight_decay, float bc1, float bc2);
PLINTH_API int plinth_cuda_to_bf16(int64_t n, const float* x, void* y);
PLINTH_API int plinth_cuda_from_bf16(int64_t n, const void* x, float* y);

/* reductions and normalisation (reduce.cu) */
PLINTH_API int plinth_cuda_reduce_forward(int op, int64_t outer, int64_t n, int64_t inner, const float* x, float* out);
PLINTH_API int plinth_cuda_reduce_backward(int op, int64_t outer, int64_t n, int64_t inner, const float* gout, float* gx, int acc);
PLINTH_API int plinth_cuda_softmax_forward(int64_t rows, int64_t n, const float* x, float* y);
PLINTH_API int plinth_cuda_softmax_backward(int64_t rows, int64_t n, const float* y, const float* gy, float* gx, int acc);
PLINTH_API int plinth_cuda_layernorm_forward(int64_t rows, int64_t C, const float* x, const float* w, const float* b, float eps,
                                             float* y, float* mean, float* rstd);
PLINTH_API int plinth_cuda_layernorm_backward(int64_t rows, int64_t C, const float* x, const float* w, const float* mean,
                                              const float* rstd, const float* gy, float* gx, float* gw, float* gb, int acc);

/* embedding and cross-entropy (embedding.cu) */
PLINTH_API int plinth_cuda_embedding_forward(int64_t n, int64_t C, int64_t V, const int32_t* ids, const float* table, float* out);
PLINTH_API int plinth_cuda_embedding_backward(int64_t n, int64_t C, int64_t V, const int32_t* ids, const float* gout, float* gtable);
PLINTH_API int plinth_cuda_cross_entropy_forward(int64_t N, int64_t V, const float* logits, const int32_t* targets, float* lse,
                                                 float* losses, double* total);
PLINTH_API int plinth_cuda_cross_entropy_backward(int64_t N, int64_t V, const float* logits, const int32_t* targets,
                                                  const float* lse, float scale, float* glogits);

/* flash attention (attention.cu); dims = {B, Tq, Tk, NH, HS}; lse [B, NH, Tq] */
PLINTH_API int plinth_cuda_attention_forward(const int64_t* dims, float scale, int causal, const float* q, int64_t q_bs,
                                             int64_t q_ts, const float* k, int64_t k_bs, int64_t k_ts, const float* v,
                                             int64_t v_bs, int64_t v_ts, float* o, int64_t o_bs, int64_t o_ts, float* lse);
PLINTH_API int plinth_cuda_attention_backward(const int64_t* dims, float scale, int causal, const float* q, int64_t q_bs,
                                              int64_t q_ts, const float* k, int64_t k_bs, int64_t k_ts, const float* v,
                                              int64_t v_bs, int64_t v_ts, const float* o, int64_t o_bs, int64_t o_ts,
                                              const float* lse, const float* go, float* gq, float* gk, float* gv, int acc);

/* GEMM (gemm.cu, cublaslt.cpp): C = alpha op(A) op(B) + beta C (+ bias row), row-major, batched by strides.
 * colsum (or NULL) accumulates op(B)'s column sums. plinth_cuda_gemm runs fp32 (cuBLASLt when
 * loaded, else the addon's kernel), or bf16 tensor cores with fp32 accumulation when
 * plinth_cuda_set_autocast(1) (operands converted on the fly; fp32 output).
 * backend: 0 auto (cuBLASLt when loaded), 1 the addon's own tensor-core kernel, 2 cuBLASLt. */
PLINTH_API int plinth_cuda_gemm(int ta, int tb, int64_t M, int64_t N, int64_t K, int64_t batch, float alpha, float beta,
                                const float* A, int64_t lda, int64_t sA, const float* B, int64_t ldb, int64_t sB, float* C,
                                int64_t ldc, int64_t sC, const float* bias, float* colsum);
PLINTH_API int plinth_cuda_gemm_bf16(int backend, int ta, int tb, int64_t M, int64_t N, int64_t K, int64_t batch, float alpha,
                                     float beta, const void* A, int64_t lda, int64_t sA, const void* B, int64_t ldb,
                                     int64_t sB, float* C, int64_t ldc, int64_t sC);
PLINTH_API int plinth_cuda_set_autocast(int on);
/* Which GEMM plinth_cuda_gemm uses: 0 auto (cuBLASLt when loaded), 1 the addon's own kernels, 2 cuBLASLt. */
PLINTH_API int plinth_cuda_set_gemm_backend(int backend);
/* 1 when libcublasLt was loaded (PLINTH_CUBLASLT names the library, else the usual sonames). */
PLINTH_API int plinth_cuda_cublaslt_available(void);

#ifdef __cplusplus
}
#endif
#endif
