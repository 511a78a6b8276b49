// N-API face of the CUDA backend (plinth_cuda.node): device memory as blocks, and a kernel
// table per device with the CPU addon's signatures (src/native/index.ts), whose operands are
// [block, elementOffset] device references. It calls the C ABI of libplinth_cuda.so
// (plinth_cuda.h), which it finds beside itself.
//
// Like the CPU addon, every binding checks types, integers, and that each operand's block holds
// every element the kernel will touch, and that ids and targets lie in range (copied to the host
// for the check), so no argument can make a kernel read or write out of bounds.
#include <napi.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "plinth_cuda.h"

namespace {

#define CHECK(cond, msg)                                                                                      \
  do {                                                                                                        \
    if (!(cond))                                                                                              \
      throw Napi::RangeError::New(info.Env(), std::string(fname) + ": " + (msg) + " (" __FILE__ ":" +         \
                                                  std::to_string(__LINE__) + ")");                            \
  } while (0)
#define TYPE_CHECK(cond, msg)                                                                                 \
  do {                                                                                                        \
    if (!(cond))                                                                                              \
      throw Napi::TypeError::New(info.Env(), std::string(fname) + ": " + (msg) + " (" __FILE__ ":" +          \
                                                 std::to_string(__LINE__) + ")");                             \
  } while (0)
#define CUDA_OK(call)                                                                                         \
  do {                                                                                                        \
    if ((call) != 0) throw Napi::Error::New(info.Env(), std::string(fname) + ": " + plinth_cuda_last_error()); \
  } while (0)

struct Block {
  void* ptr;
  int64_t bytes;
  int device;
  bool live;
};

void release_block(Block* b) {
  if (!b->live) return;
  b->live = false;
  plinth_cuda_set_device(b->device);
  plinth_cuda_free(b->ptr);
}

template <class T>
struct Ref {
  T* p;
  int64_t n;
  int device;
};

int64_t int_arg(const Napi::CallbackInfo& info, const char* fname, int i, const char* what, int64_t lo = 0) {
  TYPE_CHECK(info.Length() > static_cast<size_t>(i) && info[i].IsNumber(), std::string(what) + " must be a number");
  const double d = info[i].As<Napi::Number>().DoubleValue();
  TYPE_CHECK(std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.0e15, std::string(what) + " must be an integer");
  CHECK(static_cast<int64_t>(d) >= lo, std::string(what) + " must be >= " + std::to_string(lo));
  return static_cast<int64_t>(d);
}

float float_arg(const Napi::CallbackInfo& info, const char* fname, int i, const char* what) {
  TYPE_CHECK(info.Length() > static_cast<size_t>(i) && info[i].IsNumber(), std::string(what) + " must be a number");
  return static_cast<float>(info[i].As<Napi::Number>().DoubleValue());
}

bool bool_arg(const Napi::CallbackInfo& info, const char* fname, int i, const char* what) {
  TYPE_CHECK(info.Length() > static_cast<size_t>(i) && info[i].IsBoolean(), std::string(what) + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

std::vector<int64_t> dims_arg(const Napi::CallbackInfo& info, const char* fname, int i, const char* what) {
  TYPE_CHECK(info.Length() > static_cast<size_t>(i) && info[i].IsArray(), std::string(what) + " must be an array of integers");
  auto arr = info[i].As<Napi::Array>();
  CHECK(arr.Length() <= 8, std::string(what) + ": at most 8 dims on the GPU");
  std::vector<int64_t> out;
  for (uint32_t k = 0; k < arr.Length(); k++) {
    Napi::Value v = arr.Get(k);
    TYPE_CHECK(v.IsNumber(), std::string(what) + " must hold numbers");
    const double d = v.As<Napi::Number>().DoubleValue();
    TYPE_CHECK(std::isfinite(d) && std::floor(d) == d && d >= 0 && d < 9.0e15, std::string(what) + " must hold non-negative integers");
    out.push_back(static_cast<int64_t>(d));
  }
  return out;
}

Block* block_of(const Napi::CallbackInfo& info, const char* fname, const Napi::Value& v, const char* what) {
  TYPE_CHECK(v.IsExternal(), std::string(what) + " must be a CUDA block");
  Block* b = v.As<Napi::External<Block>>().Data();
  CHECK(b != nullptr && b->live, std::string(what) + " is a released CUDA block");
  return b;
}

template <class T>
Ref<T> ref_arg(const Napi::CallbackInfo& info, const char* fname, int i, const char* what, int device, bool optional = false) {
  if (optional && (info.Length() <= static_cast<size_t>(i) || info[i].IsNull() || info[i].IsUndefined())) return {nullptr, 0, device};
  TYPE_CHECK(info.Length() > static_cast<size_t>(i) && info[i].IsArray() && info[i].As<Napi::Array>().Length() == 2,
             std::string(what) + " must be a [block, offset] CUDA reference (a tensor on this device)");
  auto arr = info[i].As<Napi::Array>();
  Block* b = block_of(info, fname, arr.Get(uint32_t(0)), what);
  CHECK(b->device == device, std::string(what) + " lives on cuda:" + std::to_string(b->device) + ", the kernel runs on cuda:" +
                                 std::to_string(device));
  Napi::Value o = arr.Get(uint32_t(1));
  TYPE_CHECK(o.IsNumber(), std::string(what) + " offset must be a number");
  const double d = o.As<Napi::Number>().DoubleValue();
  const int64_t len = b->bytes / 4;
  CHECK(std::isfinite(d) && std::floor(d) == d && d >= 0 && d <= static_cast<double>(len),
        std::string(what) + " offset is outside its block");
  const int64_t off = static_cast<int64_t>(d);
  return {reinterpret_cast<T*>(static_cast<char*>(b->ptr) + 4 * off), len - off, device};
}

template <class T>
void need(const Napi::CallbackInfo& info, const char* fname, const Ref<T>& r, int64_t elems, const char* what) {
  CHECK(r.p == nullptr || r.n >= elems, std::string(what) + " needs " + std::to_string(elems) + " elements but has " + std::to_string(r.n));
}

int64_t mul(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_mul_overflow(a, b, &r) ? INT64_MAX : r;
}

int64_t extent(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
  int64_t e = 1;
  for (size_t d = 0; d < shape.size(); d++) {
    if (shape[d] == 0) return 0;
    if (__builtin_add_overflow(e, mul(shape[d] - 1, strides[d]), &e)) e = INT64_MAX;
  }
  return e;
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n = mul(n, d);
  return n;
}

// Copies n int32 ids to the host and checks them against [0, V) (negatives allowed when told).
void check_ids(const Napi::CallbackInfo& info, const char* fname, const Ref<int32_t>& ids, int64_t n, int64_t V, bool negative_ok) {
  std::vector<int32_t> host(static_cast<size_t>(n));
  CUDA_OK(plinth_cuda_download(host.data(), ids.p, n * 4));
  for (int64_t i = 0; i < n; i++) {
    if (negative_ok && host[i] < 0) continue;
    CHECK(host[i] >= 0 && host[i] < V, "index " + std::to_string(host[i]) + " at position " + std::to_string(i) +
                                           " is out of range [0, " + std::to_string(V) + ")");
  }
}

int device_of(const Napi::CallbackInfo& info) { return static_cast<int>(reinterpret_cast<intptr_t>(info.Data())); }

#define KERNEL(Name) Napi::Value Name(const Napi::CallbackInfo& info)
#define BEGIN(jsname)                    \
  const char* fname = jsname;            \
  const int dev = device_of(info);       \
  plinth_cuda_set_device(dev);
#define F32(i, what) ref_arg<float>(info, fname, i, what, dev)
#define F32_OPT(i, what) ref_arg<float>(info, fname, i, what, dev, true)
#define I32(i, what) ref_arg<int32_t>(info, fname, i, what, dev)
#define UNDEF return info.Env().Undefined()

// gemm, and gemmBf16 (the same product on bf16 tensor cores with fp32 accumulation: the
// mixed-precision path `precision("bf16")` selects; no column sums, like the CPU's).
Napi::Value GemmWith(const Napi::CallbackInfo& info, bool bf16) {
  const char* fname = bf16 ? "gemmBf16" : "gemm";
  const int dev = device_of(info);
  plinth_cuda_set_device(dev);
  const bool ta = bool_arg(info, fname, 0, "transA"), tb = bool_arg(info, fname, 1, "transB");
  const int64_t M = int_arg(info, fname, 2, "M"), N = int_arg(info, fname, 3, "N"), K = int_arg(info, fname, 4, "K");
  const int64_t batch = int_arg(info, fname, 5, "batch");
  const float alpha = float_arg(info, fname, 6, "alpha"), beta = float_arg(info, fname, 7, "beta");
  auto A = F32(8, "A");
  const int64_t lda = int_arg(info, fname, 9, "lda"), sA = int_arg(info, fname, 10, "strideA");
  auto B = F32(11, "B");
  const int64_t ldb = int_arg(info, fname, 12, "ldb"), sB = int_arg(info, fname, 13, "strideB");
  auto C = F32(14, "C");
  const int64_t ldc = int_arg(info, fname, 15, "ldc"), sC = int_arg(info, fname, 16, "strideC");
  auto bias = F32_OPT(17, "bias");
  auto colsum = bf16 ? Ref<float>{nullptr, 0, dev} : F32_OPT(18, "colsum");
  need(info, fname, bias, N, "bias");
  need(info, fname, colsum, N, "colsum");
  const int64_t arows = ta ? K : M, acols = ta ? M : K, brows = tb ? N : K, bcols = tb ? K : N;
  CHECK(lda >= acols && ldb >= bcols && ldc >= N, "leading dimensions shorter than their rows");
  if (batch > 0 && M > 0 && N > 0) {
    if (K > 0) {
      need(info, fname, A, extent({batch, arows, acols}, {sA, lda, 1}), "A");
      need(info, fname, B, extent({batch, brows, bcols}, {sB, ldb, 1}), "B");
    }
    need(info, fname, C, extent({batch, M, N}, {sC, ldc, 1}), "C");
  }
  if (bf16) plinth_cuda_set_autocast(1);
  const int rc = plinth_cuda_gemm(ta, tb, M, N, K, batch, alpha, beta, A.p, lda, sA, B.p, ldb, sB, C.p, ldc, sC, bias.p, colsum.p);
  if (bf16) plinth_cuda_set_autocast(0);
  CUDA_OK(rc);
  UNDEF;
}

KERNEL(Gemm) { return GemmWith(info, false); }
KERNEL(GemmBf16) { return GemmWith(info, true); }

KERNEL(BinaryForward) {
  BEGIN("binaryForward");
  const int op = static_cast<int>(int_arg(info, fname, 0, "op"));
  CHECK(op <= 3, "unknown op");
  auto shape = dims_arg(info, fname, 1, "shape"), sa = dims_arg(info, fname, 2, "stridesA"), sb = dims_arg(info, fname, 3, "stridesB");
  CHECK(sa.size() == shape.size() && sb.size() == shape.size(), "strides must match shape");
  auto a = F32(4, "a"), b = F32(5, "b"), out = F32(6, "out");
  need(info, fname, a, extent(shape, sa), "a");
  need(info, fname, b, extent(shape, sb), "b");
  need(info, fname, out, numel(shape), "out");
  CUDA_OK(plinth_cuda_binary_forward(op, static_cast<int>(shape.size()), shape.data(), sa.data(), sb.data(), a.p, b.p, out.p));
  UNDEF;
}

KERNEL(BinaryBackward) {
  BEGIN("binaryBackward");
  const int op = static_cast<int>(int_arg(info, fname, 0, "op"));
  CHECK(op <= 3, "unknown op");
  auto shape = dims_arg(info, fname, 1, "shape"), sa = dims_arg(info, fname, 2, "stridesA"), sb = dims_arg(info, fname, 3, "stridesB");
  CHECK(sa.size() == shape.size() && sb.size() == shape.size(), "strides must match shape");
  auto a = F32(4, "a"), b = F32(5, "b"), g = F32(6, "gout"), ga = F32_OPT(7, "ga"), gb = F32_OPT(8, "gb");
  need(info, fname, a, extent(shape, sa), "a");
  need(info, fname, b, extent(shape, sb), "b");
  need(info, fname, ga, extent(shape, sa), "ga");
  need(info, fname, gb, extent(shape, sb), "gb");
  need(info, fname, g, numel(shape), "gout");
  CUDA_OK(plinth_cuda_binary_backward(op, static_cast<int>(shape.size()), shape.data(), sa.data(), sb.data(), a.p, b.p, g.p, ga.p, gb.p));
  UNDEF;
}

KERNEL(UnaryForward) {
  BEGIN("unaryForward");
  const int op = static_cast<int>(int_arg(info, fname, 0, "op"));
  CHECK(op <= 8, "unknown op");
  const int64_t n = int_arg(info, fname, 1, "n");
  auto x = F32(2, "x"), y = F32(3, "y");
  need(info, fname, x, n, "x");
  need(info, fname, y, n, "y");
  CUDA_OK(plinth_cuda_unary_forward(op, n, x.p, y.p, float_arg(info, fname, 4, "alpha")));
  UNDEF;
}

KERNEL(UnaryBackward) {
  BEGIN("unaryBackward");
  const int op = static_cast<int>(int_arg(info, fname, 0, "op"));
  CHECK(op <= 8, "unknown op");
  const int64_t n = int_arg(info, fname, 1, "n");
  auto x = F32(2, "x"), y = F32(3, "y"), gy = F32(4, "gy"), gx = F32(5, "gx");
  for (auto* r : {&x, &y, &gy, &gx}) need(info, fname, *r, n, "operand");
  CUDA_OK(plinth_cuda_unary_backward(op, n, x.p, y.p, gy.p, gx.p, float_arg(info, fname, 6, "alpha"), bool_arg(info, fname, 7, "acc")));
  UNDEF;
}

KERNEL(ReduceForward) {
  BEGIN("reduceForward");
  const int op = static_cast<int>(int_arg(info, fname, 0, "op"));
  CHECK(op <= 2, "unknown op");
  const int64_t outer = int_arg(info, fname, 1, "outer"), n = int_arg(info, fname, 2, "n"), inner = int_arg(info, fname, 3, "inner");
  auto x = F32(4, "x"), out = F32(5, "out");
  need(info, fname, x, mul(mul(outer, n), inner), "x");
  need(info, fname, out, mul(outer, inner), "out");
  CUDA_OK(plinth_cuda_reduce_forward(op, outer, n, inner, x.p, out.p));
  UNDEF;
}

KERNEL(ReduceBackward) {
  BEGIN("reduceBackward");
  const int op = static_cast<int>(int_arg(info, fname, 0, "op"));
  CHECK(op <= 1, "only sum and mean have a backward");
  const int64_t outer = int_arg(info, fname, 1, "outer"), n = int_arg(info, fname, 2, "n"), inner = int_arg(info, fname, 3, "inner");
  auto g = F32(4, "gout"), gx = F32(5, "gx");
  need(info, fname, g, mul(outer, inner), "gout");
  need(info, fname, gx, mul(mul(outer, n), inner), "gx");
  CUDA_OK(plinth_cuda_reduce_backward(op, outer, n, inner, g.p, gx.p, bool_arg(info, fname, 6, "acc")));
  UNDEF;
}

KERNEL(SoftmaxForward) {
  BEGIN("softmaxForward");
  const int64_t rows = int_arg(info, fname, 0, "rows"), n = int_arg(info, fname, 1, "n");
  auto x = F32(2, "x"), y = F32(3, "y");
  need(info, fname, x, mul(rows, n), "x");
  need(info, fname, y, mul(rows, n), "y");
  CUDA_OK(plinth_cuda_softmax_forward(rows, n, x.p, y.p));
  UNDEF;
}

KERNEL(SoftmaxBackward) {
  BEGIN("softmaxBackward");
  const int64_t rows = int_arg(info, fname, 0, "rows"), n = int_arg(info, fname, 1, "n");
  auto y = F32(2, "y"), gy = F32(3, "gy"), gx = F32(4, "gx");
  for (auto* r : {&y, &gy, &gx}) need(info, fname, *r, mul(rows, n), "operand");
  CUDA_OK(plinth_cuda_softmax_backward(rows, n, y.p, gy.p, gx.p, bool_arg(info, fname, 5, "acc")));
  UNDEF;
}

KERNEL(LayernormForward) {
  BEGIN("layernormForward");
  const int64_t rows = int_arg(info, fname, 0, "rows"), C = int_arg(info, fname, 1, "C", 1);
  auto x = F32(2, "x"), w = F32(3, "w"), b = F32(4, "b");
  const float eps = float_arg(info, fname, 5, "eps");
  auto y = F32(6, "y"), mean = F32_OPT(7, "mean"), rstd = F32_OPT(8, "rstd");
  need(info, fname, x, mul(rows, C), "x");
  need(info, fname, y, mul(rows, C), "y");
  need(info, fname, w, C, "w");
  need(info, fname, b, C, "b");
  need(info, fname, mean, rows, "mean");
  need(info, fname, rstd, rows, "rstd");
  CUDA_OK(plinth_cuda_layernorm_forward(rows, C, x.p, w.p, b.p, eps, y.p, mean.p, rstd.p));
  UNDEF;
}

KERNEL(LayernormBackward) {
  BEGIN("layernormBackward");
  const int64_t rows = int_arg(info, fname, 0, "rows"), C = int_arg(info, fname, 1, "C", 1);
  auto x = F32(2, "x"), w = F32(3, "w"), mean = F32(4, "mean"), rstd = F32(5, "rstd"), gy = F32(6, "gy"), gx = F32(7, "gx");
  auto gw = F32(8, "gw"), gb = F32(9, "gb");
  for (auto* r : {&x, &gy, &gx}) need(info, fname, *r, mul(rows, C), "operand");
  for (auto* r : {&w, &gw, &gb}) need(info, fname, *r, C, "weight operand");
  need(info, fname, mean, rows, "mean");
  need(info, fname, rstd, rows, "rstd");
  CUDA_OK(plinth_cuda_layernorm_backward(rows, C, x.p, w.p, mean.p, rstd.p, gy.p, gx.p, gw.p, gb.p, bool_arg(info, fname, 10, "acc")));
  UNDEF;
}

KERNEL(GeluForward) {
  BEGIN("geluForward");
  const int64_t n = int_arg(info, fname, 0, "n");
  auto x = F32(1, "x"), y = F32(2, "y");
  need(info, fname, x, n, "x");
  need(info, fname, y, n, "y");
  CUDA_OK(plinth_cuda_gelu_forward(n, x.p, y.p));
  UNDEF;
}

KERNEL(GeluBackward) {
  BEGIN("geluBackward");
  const int64_t n = int_arg(info, fname, 0, "n");
  auto x = F32(1, "x"), gy = F32(2, "gy"), gx = F32(3, "gx");
  for (auto* r : {&x, &gy, &gx}) need(info, fname, *r, n, "operand");
  CUDA_OK(plinth_cuda_gelu_backward(n, x.p, gy.p, gx.p, bool_arg(info, fname, 4, "acc")));
  UNDEF;
}

KERNEL(EmbeddingForward) {
  BEGIN("embeddingForward");
  const int64_t n = int_arg(info, fname, 0, "n"), C = int_arg(info, fname, 1, "C"), V = int_arg(info, fname, 2, "V");
  auto ids = I32(3, "ids");
  auto table = F32(4, "table"), out = F32(5, "out");
  need(info, fname, ids, n, "ids");
  need(info, fname, table, mul(V, C), "table");
  need(info, fname, out, mul(n, C), "out");
  check_ids(info, fname, ids, n, V, false);
  CUDA_OK(plinth_cuda_embedding_forward(n, C, V, ids.p, table.p, out.p));
  UNDEF;
}

KERNEL(EmbeddingBackward) {
  BEGIN("embeddingBackward");
  const int64_t n = int_arg(info, fname, 0, "n"), C = int_arg(info, fname, 1, "C"), V = int_arg(info, fname, 2, "V");
  auto ids = I32(3, "ids");
  auto g = F32(4, "gout"), gt = F32(5, "gtable");
  need(info, fname, ids, n, "ids");
  need(info, fname, g, mul(n, C), "gout");
  need(info, fname, gt, mul(V, C), "gtable");
  check_ids(info, fname, ids, n, V, false);
  CUDA_OK(plinth_cuda_embedding_backward(n, C, V, ids.p, g.p, gt.p));
  UNDEF;
}

struct AttnArgs {
  std::vector<int64_t> dims;
  float scale;
  bool causal;
  Ref<float> q, k, v, o;
  int64_t qbs, qts, kbs, kts, vbs, vts, obs, ots;
};

void need_rows(const Napi::CallbackInfo& info, const char* fname, const Ref<float>& r, int64_t B, int64_t T, int64_t bs, int64_t ts,
               int64_t C, const char* what) {
  need(info, fname, r, extent({B, T, C}, {bs, ts, 1}), what);
}

AttnArgs attn_args(const Napi::CallbackInfo& info, const char* fname, int dev) {
  AttnArgs a{};
  a.dims = dims_arg(info, fname, 0, "dims");
  CHECK(a.dims.size() == 5, "dims must be [B, Tq, Tk, NH, HS]");
  CHECK(a.dims[4] >= 1 && a.dims[4] <= 128, "head size must be in [1, 128] on the GPU");
  a.scale = float_arg(info, fname, 1, "scale");
  a.causal = bool_arg(info, fname, 2, "causal");
  a.q = F32(3, "q"); a.qbs = int_arg(info, fname, 4, "qBs"); a.qts = int_arg(info, fname, 5, "qTs");
  a.k = F32(6, "k"); a.kbs = int_arg(info, fname, 7, "kBs"); a.kts = int_arg(info, fname, 8, "kTs");
  a.v = F32(9, "v"); a.vbs = int_arg(info, fname, 10, "vBs"); a.vts = int_arg(info, fname, 11, "vTs");
  a.o = F32(12, "o"); a.obs = int_arg(info, fname, 13, "oBs"); a.ots = int_arg(info, fname, 14, "oTs");
  const int64_t B = a.dims[0], Tq = a.dims[1], Tk = a.dims[2], C = mul(a.dims[3], a.dims[4]);
  need_rows(info, fname, a.q, B, Tq, a.qbs, a.qts, C, "q");
  need_rows(info, fname, a.k, B, Tk, a.kbs, a.kts, C, "k");
  need_rows(info, fname, a.v, B, Tk, a.vbs, a.vts, C, "v");
  need_rows(info, fname, a.o, B, Tq, a.obs, a.ots, C, "o");
  return a;
}

KERNEL(AttentionForward) {
  BEGIN("attentionForward");
  AttnArgs a = attn_args(info, fname, dev);
  auto lse = F32_OPT(15, "lse");
  need(info, fname, lse, mul(mul(a.dims[0], a.dims[3]), a.dims[1]), "lse");
  CUDA_OK(plinth_cuda_attention_forward(a.dims.data(), a.scale, a.causal, a.q.p, a.qbs, a.qts, a.k.p, a.kbs, a.kts, a.v.p, a.vbs,
                                        a.vts, a.o.p, a.obs, a.ots, lse.p));
  UNDEF;
}

KERNEL(AttentionBackward) {
  BEGIN("attentionBackward");
  AttnArgs a = attn_args(info, fname, dev);
  auto lse = F32(15, "lse"), go = F32(16, "go"), gq = F32(17, "gq"), gk = F32(18, "gk"), gv = F32(19, "gv");
  const int64_t B = a.dims[0], Tq = a.dims[1], Tk = a.dims[2], C = mul(a.dims[3], a.dims[4]);
  need(info, fname, lse, mul(mul(B, a.dims[3]), Tq), "lse");
  need_rows(info, fname, go, B, Tq, a.obs, a.ots, C, "go");
  need_rows(info, fname, gq, B, Tq, a.qbs, a.qts, C, "gq");
  need_rows(info, fname, gk, B, Tk, a.kbs, a.kts, C, "gk");
  need_rows(info, fname, gv, B, Tk, a.vbs, a.vts, C, "gv");
  CUDA_OK(plinth_cuda_attention_backward(a.dims.data(), a.scale, a.causal, a.q.p, a.qbs, a.qts, a.k.p, a.kbs, a.kts, a.v.p, a.vbs,
                                         a.vts, a.o.p, a.obs, a.ots, lse.p, go.p, gq.p, gk.p, gv.p, bool_arg(info, fname, 20, "acc")));
  UNDEF;
}

KERNEL(CrossEntropyForward) {
  BEGIN("crossEntropyForward");
  const int64_t N = int_arg(info, fname, 0, "N"), V = int_arg(info, fname, 1, "V", 1);
  auto logits = F32(2, "logits");
  auto targets = I32(3, "targets");
  auto lse = F32(4, "lse"), losses = F32(5, "losses");
  need(info, fname, logits, mul(N, V), "logits");
  need(info, fname, targets, N, "targets");
  need(info, fname, lse, N, "lse");
  need(info, fname, losses, N, "losses");
  check_ids(info, fname, targets, N, V, true);
  double total = 0;
  CUDA_OK(plinth_cuda_cross_entropy_forward(N, V, logits.p, targets.p, lse.p, losses.p, &total));
  return Napi::Number::New(info.Env(), total);
}

KERNEL(CrossEntropyBackward) {
  BEGIN("crossEntropyBackward");
  const int64_t N = int_arg(info, fname, 0, "N"), V = int_arg(info, fname, 1, "V", 1);
  auto logits = F32(2, "logits");
  auto targets = I32(3, "targets");
  auto lse = F32(4, "lse");
  const float scale = float_arg(info, fname, 5, "scale");
  auto g = F32(6, "glogits");
  need(info, fname, logits, mul(N, V), "logits");
  need(info, fname, g, mul(N, V), "glogits");
  need(info, fname, targets, N, "targets");
  need(info, fname, lse, N, "lse");
  check_ids(info, fname, targets, N, V, true);
  CUDA_OK(plinth_cuda_cross_entropy_backward(N, V, logits.p, targets.p, lse.p, scale, g.p));
  UNDEF;
}

KERNEL(AdamwStep) {
  BEGIN("adamwStep");
  const int64_t n = int_arg(info, fname, 0, "n");
  auto p = F32(1, "p"), g = F32(2, "g"), m = F32(3, "m"), v = F32(4, "v");
  for (auto* r : {&p, &g, &m, &v}) need(info, fname, *r, n, "operand");
  float h[7];
  for (int i = 0; i < 7; i++) h[i] = float_arg(info, fname, 5 + i, "hyperparameter");
  CUDA_OK(plinth_cuda_adamw_step(n, p.p, g.p, m.p, v.p, h[0], h[1], h[2], h[3], h[4], h[5], h[6]));
  UNDEF;
}

KERNEL(SumSquares) {
  BEGIN("sumSquares");
  const int64_t n = int_arg(info, fname, 0, "n");
  auto x = F32(1, "x");
  need(info, fname, x, n, "x");
  double out = 0;
  CUDA_OK(plinth_cuda_sum_squares(n, x.p, &out));
  return Napi::Number::New(info.Env(), out);
}

KERNEL(Axpy) {
  BEGIN("axpy");
  const int64_t n = int_arg(info, fname, 0, "n");
  const float alpha = float_arg(info, fname, 1, "alpha");
  auto x = F32(2, "x"), y = F32(3, "y");
  need(info, fname, x, n, "x");
  need(info, fname, y, n, "y");
  CUDA_OK(plinth_cuda_axpy(n, alpha, x.p, y.p));
  UNDEF;
}

KERNEL(Fill) {
  BEGIN("fill");
  const int64_t n = int_arg(info, fname, 0, "n");
  auto x = F32(1, "x");
  need(info, fname, x, n, "x");
  CUDA_OK(plinth_cuda_fill(n, x.p, float_arg(info, fname, 2, "value")));
  UNDEF;
}

KERNEL(CopyStrided) {
  BEGIN("copyStrided");
  auto shape = dims_arg(info, fname, 0, "shape"), strides = dims_arg(info, fname, 1, "strides");
  CHECK(strides.size() == shape.size(), "strides must match shape");
  auto src = F32(2, "src"), dst = F32(3, "dst");
  need(info, fname, src, extent(shape, strides), "src");
  need(info, fname, dst, numel(shape), "dst");
  CUDA_OK(plinth_cuda_copy_strided(static_cast<int>(shape.size()), shape.data(), strides.data(), src.p, dst.p));
  UNDEF;
}

KERNEL(DropoutForward) {
  BEGIN("dropoutForward");
  const int64_t n = int_arg(info, fname, 0, "n");
  auto x = F32(1, "x"), y = F32(2, "y");
  const float p = float_arg(info, fname, 3, "p");
  const uint64_t seed = static_cast<uint64_t>(int_arg(info, fname, 4, "seed"));
  CHECK(p >= 0.0f && p < 1.0f, "p must be in [0, 1)");
  need(info, fname, x, n, "x");
  need(info, fname, y, n, "y");
  CUDA_OK(plinth_cuda_dropout_forward(n, x.p, y.p, p, seed));
  UNDEF;
}

KERNEL(DropoutBackward) {
  BEGIN("dropoutBackward");
  const int64_t n = int_arg(info, fname, 0, "n");
  auto gy = F32(1, "gy"), gx = F32(2, "gx");
  const float p = float_arg(info, fname, 3, "p");
  const uint64_t seed = static_cast<uint64_t>(int_arg(info, fname, 4, "seed"));
  CHECK(p >= 0.0f && p < 1.0f, "p must be in [0, 1)");
  need(info, fname, gy, n, "gy");
  need(info, fname, gx, n, "gx");
  CUDA_OK(plinth_cuda_dropout_backward(n, gy.p, gx.p, p, seed, bool_arg(info, fname, 5, "acc")));
  UNDEF;
}

// ---- devices and memory -----------------------------------------------------------------

Napi::Value DeviceCount(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), plinth_cuda_device_count()); }

int device_arg(const Napi::CallbackInfo& info, const char* fname, int i) {
  const int64_t d = int_arg(info, fname, i, "device");
  CHECK(d < plinth_cuda_device_count(), "no CUDA device " + std::to_string(d));
  return static_cast<int>(d);
}

Napi::Value DeviceInfo(const Napi::CallbackInfo& info) {
  const char* fname = "deviceInfo";
  const int d = device_arg(info, fname, 0);
  char name[256];
  int64_t v[5];
  CUDA_OK(plinth_cuda_device_info(d, name, sizeof(name), v));
  auto o = Napi::Object::New(info.Env());
  o.Set("index", d);
  o.Set("name", name);
  o.Set("totalBytes", static_cast<double>(v[0]));
  o.Set("freeBytes", static_cast<double>(v[1]));
  o.Set("major", static_cast<double>(v[2]));
  o.Set("minor", static_cast<double>(v[3]));
  o.Set("multiprocessors", static_cast<double>(v[4]));
  return o;
}

Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  const char* fname = "memoryStats";
  const int d = device_arg(info, fname, 0);
  CUDA_OK(plinth_cuda_set_device(d));
  int64_t s[4];
  CUDA_OK(plinth_cuda_memory_stats(s));
  auto o = Napi::Object::New(info.Env());
  o.Set("bytesInUse", static_cast<double>(s[0]));
  o.Set("bytesCached", static_cast<double>(s[1]));
  o.Set("peakBytesInUse", static_cast<double>(s[2]));
  o.Set("deviceMallocs", static_cast<double>(s[3]));
  return o;
}

Napi::Value GemmBackend(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), plinth_cuda_cublaslt_available() ? "cublasLt" : "own");
}

Napi::Value Alloc(const Napi::CallbackInfo& info) {
  const char* fname = "alloc";
  const int d = device_arg(info, fname, 0);
  const int64_t bytes = int_arg(info, fname, 1, "bytes");
  CUDA_OK(plinth_cuda_set_device(d));
  void* p = plinth_cuda_alloc(bytes < 4 ? 4 : bytes);
  if (p == nullptr) throw Napi::Error::New(info.Env(), std::string("alloc: ") + plinth_cuda_last_error());
  return Napi::External<Block>::New(info.Env(), new Block{p, bytes, d, true}, [](Napi::Env, Block* b) {
    release_block(b);
    delete b;
  });
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  const char* fname = "free";
  TYPE_CHECK(info.Length() >= 1 && info[0].IsExternal(), "argument 0 must be a CUDA block");
  Block* b = info[0].As<Napi::External<Block>>().Data();
  const bool was = b != nullptr && b->live;
  if (was) release_block(b);
  return Napi::Boolean::New(info.Env(), was);
}

Napi::Value Transfer(const Napi::CallbackInfo& info, bool upload) {
  const char* fname = upload ? "upload" : "download";
  TYPE_CHECK(info.Length() >= 3, "expected (block, byteOffset, typedArray)");
  Block* b = block_of(info, fname, info[0], "block");
  const int64_t off = int_arg(info, fname, 1, "byteOffset");
  TYPE_CHECK(info[2].IsTypedArray(), "argument 2 must be a typed array");
  auto a = info[2].As<Napi::TypedArray>();
  const int64_t n = static_cast<int64_t>(a.ByteLength());
  CHECK(off <= b->bytes && n <= b->bytes - off, "range overruns the block");
  char* host = static_cast<char*>(a.ArrayBuffer().Data()) + a.ByteOffset();
  char* dev = static_cast<char*>(b->ptr) + off;
  CUDA_OK(plinth_cuda_set_device(b->device));
  CUDA_OK(upload ? plinth_cuda_upload(dev, host, n) : plinth_cuda_download(host, dev, n));
  UNDEF;
}
Napi::Value Upload(const Napi::CallbackInfo& info) { return Transfer(info, true); }
Napi::Value Download(const Napi::CallbackInfo& info) { return Transfer(info, false); }

Napi::Value Copy(const Napi::CallbackInfo& info) {
  const char* fname = "copy";
  TYPE_CHECK(info.Length() >= 5, "expected (src, srcByteOffset, dst, dstByteOffset, bytes)");
  Block* s = block_of(info, fname, info[0], "src");
  const int64_t so = int_arg(info, fname, 1, "srcByteOffset");
  Block* d = block_of(info, fname, info[2], "dst");
  const int64_t dO = int_arg(info, fname, 3, "dstByteOffset");
  const int64_t n = int_arg(info, fname, 4, "bytes");
  CHECK(s->device == d->device, "copies between GPUs go through the host");
  CHECK(so <= s->bytes && n <= s->bytes - so && dO <= d->bytes && n <= d->bytes - dO, "range overruns a block");
  CUDA_OK(plinth_cuda_set_device(s->device));
  CUDA_OK(plinth_cuda_copy(static_cast<char*>(d->ptr) + dO, static_cast<char*>(s->ptr) + so, n));
  UNDEF;
}

Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  const char* fname = "synchronize";
  CUDA_OK(plinth_cuda_set_device(device_arg(info, fname, 0)));
  CUDA_OK(plinth_cuda_synchronize());
  UNDEF;
}

Napi::Value Kernels(const Napi::CallbackInfo& info) {
  const char* fname = "kernels";
  const int d = device_arg(info, fname, 0);
  void* data = reinterpret_cast<void*>(static_cast<intptr_t>(d));
  const std::pair<const char*, Napi::Value (*)(const Napi::CallbackInfo&)> fns[] = {
      {"gemm", Gemm}, {"gemmBf16", GemmBf16}, {"binaryForward", BinaryForward}, {"binaryBackward", BinaryBackward}, {"unaryForward", UnaryForward},
      {"unaryBackward", UnaryBackward}, {"reduceForward", ReduceForward}, {"reduceBackward", ReduceBackward},
      {"softmaxForward", SoftmaxForward}, {"softmaxBackward", SoftmaxBackward}, {"layernormForward", LayernormForward},
      {"layernormBackward", LayernormBackward}, {"geluForward", GeluForward}, {"geluBackward", GeluBackward},
      {"embeddingForward", EmbeddingForward}, {"embeddingBackward", EmbeddingBackward}, {"attentionForward", AttentionForward},
      {"attentionBackward", AttentionBackward}, {"crossEntropyForward", CrossEntropyForward},
      {"crossEntropyBackward", CrossEntropyBackward}, {"adamwStep", AdamwStep}, {"sumSquares", SumSquares}, {"axpy", Axpy},
      {"fill", Fill}, {"copyStrided", CopyStrided}, {"dropoutForward", DropoutForward}, {"dropoutBackward", DropoutBackward}};
  auto o = Napi::Object::New(info.Env());
  for (const auto& [name, fn] : fns) o.Set(name, Napi::Function::New(info.Env(), fn, name, data));
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  const std::pair<const char*, Napi::Value (*)(const Napi::CallbackInfo&)> fns[] = {
      {"deviceCount", DeviceCount}, {"deviceInfo", DeviceInfo}, {"memoryStats", MemoryStats}, {"gemmBackend", GemmBackend},
      {"kernels", Kernels}, {"alloc", Alloc}, {"free", Free}, {"upload", Upload}, {"download", Download}, {"copy", Copy},
      {"synchronize", Synchronize}};
  for (const auto& [name, fn] : fns) exports.Set(name, Napi::Function::New(env, fn, name));
  return exports;
}

}  // namespace

NODE_API_MODULE(plinth_cuda, Init)
