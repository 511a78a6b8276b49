// cuBLASLt loaded at run time with dlopen: the CUDA toolkit and PyTorch's wheels ship
// libcublasLt, build machines may not, and the addon must build and load without it. The few
// declarations used are written here (values from cublasLt.h / library_types.h); when the
// library is absent, plinth_cuda_gemm falls back to the addon's own kernels.
//
// Row-major C[M, N] = op(A) op(B) is computed as column-major C^T = op(B)^T op(A)^T: cuBLASLt's
// "A" is our B and its "B" our A, with the transposes kept.
#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

#include "common.cuh"
#include "plinth_cuda.h"

namespace plinth_cuda {

namespace {
using Status = int;
using Handle = void*;
using Desc = void*;
using Layout = void*;
using Pref = void*;
struct Algo { uint64_t data[8]; };
struct Heuristic { Algo algo; size_t workspaceSize; Status state; float wavesCount; int reserved[4]; };

constexpr int COMPUTE_32F = 68;
constexpr int R_32F = 0, R_16BF = 14;
constexpr int DESC_TRANSA = 3, DESC_TRANSB = 4;
constexpr int LAYOUT_BATCH_COUNT = 5, LAYOUT_STRIDED_BATCH_OFFSET = 6;
constexpr int PREF_MAX_WORKSPACE_BYTES = 1;
constexpr size_t kWorkspace = 32u << 20;

struct Api {
  Status (*create)(Handle*);
  Status (*desc_create)(Desc*, int, int);
  Status (*desc_destroy)(Desc);
  Status (*desc_set)(Desc, int, const void*, size_t);
  Status (*layout_create)(Layout*, int, uint64_t, uint64_t, int64_t);
  Status (*layout_destroy)(Layout);
  Status (*layout_set)(Layout, int, const void*, size_t);
  Status (*pref_create)(Pref*);
  Status (*pref_destroy)(Pref);
  Status (*pref_set)(Pref, int, const void*, size_t);
  Status (*heuristic)(Handle, Desc, Layout, Layout, Layout, Layout, Pref, int, Heuristic*, int*);
  Status (*matmul)(Handle, Desc, const void*, const void*, Layout, const void*, Layout, const void*, const void*, Layout, void*,
                   Layout, const Algo*, void*, size_t, cudaStream_t);
};

std::once_flag once;
Api api{};
bool loaded = false;
Handle handles[64] = {};
void* workspaces[64] = {};

template <class F>
bool sym(void* lib, const char* name, F* out) {
  *out = reinterpret_cast<F>(dlsym(lib, name));
  return *out != nullptr;
}

void load() {
  const char* named = std::getenv("PLINTH_CUBLASLT");
  const char* candidates[] = {named, "libcublasLt.so", "libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11"};
  void* lib = nullptr;
  for (const char* c : candidates) {
    if (c == nullptr || *c == 0) continue;
    lib = dlopen(c, RTLD_NOW | RTLD_LOCAL);
    if (lib != nullptr) break;
  }
  if (lib == nullptr) return;
  loaded = sym(lib, "cublasLtCreate", &api.create) && sym(lib, "cublasLtMatmulDescCreate", &api.desc_create) &&
           sym(lib, "cublasLtMatmulDescDestroy", &api.desc_destroy) &&
           sym(lib, "cublasLtMatmulDescSetAttribute", &api.desc_set) &&
           sym(lib, "cublasLtMatrixLayoutCreate", &api.layout_create) &&
           sym(lib, "cublasLtMatrixLayoutDestroy", &api.layout_destroy) &&
           sym(lib, "cublasLtMatrixLayoutSetAttribute", &api.layout_set) &&
           sym(lib, "cublasLtMatmulPreferenceCreate", &api.pref_create) &&
           sym(lib, "cublasLtMatmulPreferenceDestroy", &api.pref_destroy) &&
           sym(lib, "cublasLtMatmulPreferenceSetAttribute", &api.pref_set) &&
           sym(lib, "cublasLtMatmulAlgoGetHeuristic", &api.heuristic) && sym(lib, "cublasLtMatmul", &api.matmul);
}

Layout layout(int type, int64_t rows, int64_t cols, int64_t ld, int64_t batch, int64_t stride) {
  Layout l = nullptr;
  if (api.layout_create(&l, type, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld) != 0) return nullptr;
  if (batch > 1) {
    const int32_t b = static_cast<int32_t>(batch);
    api.layout_set(l, LAYOUT_BATCH_COUNT, &b, sizeof(b));
    api.layout_set(l, LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride));
  }
  return l;
}
}  // namespace

bool cublaslt_loaded() {
  std::call_once(once, load);
  return loaded;
}

// C (fp32) = alpha op(A) op(B) + beta C with A, B fp32 (bf16 = false) or bf16 (bf16 = true).
bool cublaslt_gemm(bool bf16, bool ta, bool tb, int64_t M, int64_t N, int64_t K, int64_t batch, float alpha, float beta,
                   const void* A, int64_t lda, int64_t sA, const void* B, int64_t ldb, int64_t sB, float* C, int64_t ldc,
                   int64_t sC) {
  if (!cublaslt_loaded()) return fail("cuBLASLt is not loaded", __FILE__, __LINE__);
  int dev = 0;
  cudaGetDevice(&dev);
  dev %= 64;
  if (handles[dev] == nullptr) {
    if (api.create(&handles[dev]) != 0) return fail("cublasLtCreate failed", __FILE__, __LINE__);
    workspaces[dev] = plinth_cuda_alloc(static_cast<int64_t>(kWorkspace));
    if (workspaces[dev] == nullptr) return false;
  }
  const int in = bf16 ? R_16BF : R_32F;
  Desc desc = nullptr;
  if (api.desc_create(&desc, COMPUTE_32F, R_32F) != 0) return fail("cublasLtMatmulDescCreate failed", __FILE__, __LINE__);
  const int32_t opa = tb ? 1 : 0, opb = ta ? 1 : 0;  // Lt's A is our B, its B our A
  api.desc_set(desc, DESC_TRANSA, &opa, sizeof(opa));
  api.desc_set(desc, DESC_TRANSB, &opb, sizeof(opb));
  // Column-major views: our row-major B [K, N] (ld ldb) is N x K... as stored: rows = tb ? K : N.
  Layout la = layout(in, tb ? K : N, tb ? N : K, ldb, batch, sB);
  Layout lb = layout(in, ta ? M : K, ta ? K : M, lda, batch, sA);
  Layout lc = layout(R_32F, N, M, ldc, batch, sC);
  Pref pref = nullptr;
  api.pref_create(&pref);
  const uint64_t ws = kWorkspace;
  api.pref_set(pref, PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  Heuristic h{};
  int found = 0;
  bool good = la != nullptr && lb != nullptr && lc != nullptr &&
              api.heuristic(handles[dev], desc, la, lb, lc, lc, pref, 1, &h, &found) == 0 && found > 0;
  if (good) {
    good = api.matmul(handles[dev], desc, &alpha, B, la, A, lb, &beta, C, lc, C, lc, &h.algo, workspaces[dev], kWorkspace,
                      stream()) == 0;
  }
  api.pref_destroy(pref);
  if (la) api.layout_destroy(la);
  if (lb) api.layout_destroy(lb);
  if (lc) api.layout_destroy(lc);
  api.desc_destroy(desc);
  return good ? true : fail("cublasLtMatmul failed (no algorithm for this shape, or an error)", __FILE__, __LINE__);
}

}  // namespace plinth_cuda

extern "C" int plinth_cuda_cublaslt_available(void) { return plinth_cuda::cublaslt_loaded() ? 1 : 0; }
