// N-API bindings: argument checking, then one call into the active kernel table.
//
// Every binding checks the JS types, that integers are integers, and that each buffer
// holds every element the kernel will touch (given shapes and strides), and that index
// inputs lie in range, so that no argument can make native code read or write out of
// bounds. Errors carry the binding name and file:line of the check.
#include <napi.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "allocator.h"
#include "kernels.h"
#include "lowp.h"
#include "threadpool.h"

namespace plinth {
namespace {

#define CHECK(cond, msg)                                                                            \
  do {                                                                                              \
    if (!(cond))                                                                                    \
      throw Napi::RangeError::New(info.Env(), std::string(fname) + ": " + (msg) + " (" __FILE__ ":" + \
                                                  std::to_string(__LINE__) + ")");                  \
  } while (0)

#define TYPE_CHECK(cond, msg)                                                                       \
  do {                                                                                              \
    if (!(cond))                                                                                    \
      throw Napi::TypeError::New(info.Env(), std::string(fname) + ": " + (msg) + " (" __FILE__ ":" + \
                                                 std::to_string(__LINE__) + ")");                   \
  } while (0)

template <class T>
struct Buf {
  T* p;
  int64_t n;
};

std::string arg_name(int i) { return "argument " + std::to_string(i); }

int64_t int_arg(const Napi::CallbackInfo& info, const char* fname, int i, const char* what, int64_t lo = 0) {
  TYPE_CHECK(info.Length() > static_cast<size_t>(i) && info[i].IsNumber(),
             std::string(what) + " (" + arg_name(i) + ") must be a number");
  const double d = info[i].As<Napi::Number>().DoubleValue();
  TYPE_CHECK(std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.0e15,
             std::string(what) + " (" + arg_name(i) + ") must be an integer, got " + std::to_string(d));
  CHECK(static_cast<int64_t>(d) >= lo,
        std::string(what) + " must be >= " + std::to_string(lo) + ", got " + std::to_string(static_cast<int64_t>(d)));
  return static_cast<int64_t>(d);
}

float float_arg(const Napi::CallbackInfo& info, const char* fname, int i, const char* what) {
  TYPE_CHECK(info.Length() > static_cast<size_t>(i) && info[i].IsNumber(),
             std::string(what) + " (" + arg_name(i) + ") must be a number");
  return static_cast<float>(info[i].As<Napi::Number>().DoubleValue());
}

bool bool_arg(const Napi::CallbackInfo& info, const char* fname, int i, const char* what) {
  TYPE_CHECK(info.Length() > static_cast<size_t>(i) && info[i].IsBoolean(),
             std::string(what) + " (" + arg_name(i) + ") must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

// ---- opaque device blocks -------------------------------------------------------------
//
// The "opaque" test device keeps tensor storage in native blocks that JavaScript never
// sees as an ArrayBuffer: kernels take [block, elementOffset] pairs instead of typed arrays
// (the shape a GPU backend's operands have), and values move only through deviceUpload and
// deviceDownload. It proves that nothing above src/tensor/ reads device memory directly.
struct DevBlock {
  void* ptr;
  size_t size;   // rounded size held from the allocator
  int64_t bytes; // bytes requested (the bound every check uses)
  bool live;
};
int64_t& dev_live_blocks() {
  static int64_t n = 0;
  return n;
}

bool is_dev_ref(const Napi::Value& v) {
  if (!v.IsArray()) return false;
  auto arr = v.As<Napi::Array>();
  return arr.Length() == 2 && arr.Get(uint32_t(0)).IsExternal();
}

// A [block, elementOffset] pair: 4-byte elements of a live block from the offset to its end.
template <class T>
Buf<T> dev_arg(const Napi::CallbackInfo& info, const char* fname, int i, const char* what) {
  auto arr = info[i].As<Napi::Array>();
  Napi::Value h = arr.Get(uint32_t(0)), o = arr.Get(uint32_t(1));
  TYPE_CHECK(h.IsExternal() && o.IsNumber(), std::string(what) + " (" + arg_name(i) + ") must be a [block, offset] device reference");
  DevBlock* b = h.As<Napi::External<DevBlock>>().Data();
  CHECK(b != nullptr && b->live, std::string(what) + " is a released device block");
  const double d = o.As<Napi::Number>().DoubleValue();
  const int64_t len = b->bytes / 4;
  CHECK(std::isfinite(d) && std::floor(d) == d && d >= 0 && d <= static_cast<double>(len),
        std::string(what) + " offset " + std::to_string(static_cast<int64_t>(d)) + " is outside the block's " + std::to_string(len) + " elements");
  const int64_t off = static_cast<int64_t>(d);
  return {static_cast<T*>(b->ptr) + off, len - off};
}

Buf<float> f32_arg(const Napi::CallbackInfo& info, const char* fname, int i, const char* what,
                   bool optional = false) {
  if (optional && (info.Length() <= static_cast<size_t>(i) || info[i].IsNull() || info[i].IsUndefined()))
    return {nullptr, 0};
  if (info.Length() > static_cast<size_t>(i) && is_dev_ref(info[i])) return dev_arg<float>(info, fname, i, what);
  TYPE_CHECK(info.Length() > static_cast<size_t>(i) && info[i].IsTypedArray() &&
                 info[i].As<Napi::TypedArray>().TypedArrayType() == napi_float32_array,
             std::string(what) + " (" + arg_name(i) + ") must be a Float32Array");
  auto a = info[i].As<Napi::Float32Array>();
  return {a.Data(), static_cast<int64_t>(a.ElementLength())};
}

Buf<int32_t> i32_arg(const Napi::CallbackInfo& info, const char* fname, int i, const char* what) {
  if (info.Length() > static_cast<size_t>(i) && is_dev_ref(info[i])) return dev_arg<int32_t>(info, fname, i, what);
  TYPE_CHECK(info.Length() > static_cast<size_t>(i) && info[i].IsTypedArray() &&
                 info[i].As<Napi::TypedArray>().TypedArrayType() == napi_int32_array,
             std::string(what) + " (" + arg_name(i) + ") must be an Int32Array");
  auto a = info[i].As<Napi::Int32Array>();
  return {a.Data(), static_cast<int64_t>(a.ElementLength())};
}

std::vector<int64_t> dims_arg(const Napi::CallbackInfo& info, const char* fname, int i, const char* what) {
  TYPE_CHECK(info.Length() > static_cast<size_t>(i) && info[i].IsArray(),
             std::string(what) + " (" + arg_name(i) + ") must be an array of integers");
  auto arr = info[i].As<Napi::Array>();
  CHECK(arr.Length() <= 16, std::string(what) + " has " + std::to_string(arr.Length()) + " dims; at most 16");
  std::vector<int64_t> out;
  for (uint32_t k = 0; k < arr.Length(); k++) {
    Napi::Value v = arr.Get(k);
    TYPE_CHECK(v.IsNumber(), std::string(what) + "[" + std::to_string(k) + "] must be a number");
    const double d = v.As<Napi::Number>().DoubleValue();
    TYPE_CHECK(std::isfinite(d) && std::floor(d) == d && d >= 0 && d < 9.0e15,
               std::string(what) + "[" + std::to_string(k) + "] must be a non-negative integer");
    out.push_back(static_cast<int64_t>(d));
  }
  return out;
}

// Size arithmetic on validated (non-negative) sizes saturates at INT64_MAX, a size no buffer
// has: a product that wrapped around 2^64 could otherwise shrink to a few elements, pass the
// buffer checks, and let the kernel walk the full, unwrapped sizes.
int64_t mul_sat(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_mul_overflow(a, b, &r) ? INT64_MAX : r;
}
int64_t mul_sat(int64_t a, int64_t b, int64_t c) { return mul_sat(mul_sat(a, b), c); }

// Number of elements spanned by a strided view: 1 + sum (shape_d - 1) * stride_d (0 if empty).
int64_t extent(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
  int64_t e = 1;
  for (size_t d = 0; d < shape.size(); d++) {
    if (shape[d] == 0) return 0;
    if (__builtin_add_overflow(e, mul_sat(shape[d] - 1, strides[d]), &e)) e = INT64_MAX;
  }
  return e;
}

template <class T>
void need(const Napi::CallbackInfo& info, const char* fname, const Buf<T>& b, int64_t elems, const char* what) {
  CHECK(b.n >= elems, std::string(what) + " needs " + std::to_string(elems) + " elements but has " +
                          std::to_string(b.n));
}

void check_ids(const Napi::CallbackInfo& info, const char* fname, const Buf<int32_t>& ids, int64_t n, int64_t V,
               bool allow_negative) {
  for (int64_t i = 0; i < n; i++) {
    const int32_t id = ids.p[i];
    if (allow_negative && id < 0) continue;
    CHECK(id >= 0 && id < V, "index " + std::to_string(id) + " at position " + std::to_string(i) +
                                 " is out of range [0, " + std::to_string(V) + ")");
  }
}

// ---- memory ---------------------------------------------------------------------------

struct Block {
  void* ptr;
  size_t size;
  bool live;
};
std::unordered_map<void*, Block*>& live_blocks() {
  static auto* m = new std::unordered_map<void*, Block*>();
  return *m;
}

void finalize_block(Napi::Env, void*, Block* block) {
  if (block->live) {
    live_blocks().erase(block->ptr);
    cache_free(block->ptr, block->size);
  }
  delete block;
}

Napi::Value Alloc(const Napi::CallbackInfo& info) {
  const char* fname = "alloc";
  const int64_t bytes = int_arg(info, fname, 0, "bytes");
  CHECK(bytes <= (int64_t(1) << 40), "refusing to allocate " + std::to_string(bytes) + " bytes");
  size_t rounded = 0;
  void* ptr = nullptr;
  try {
    ptr = cache_alloc(static_cast<size_t>(bytes), &rounded);
  } catch (const std::bad_alloc&) {
    CHECK(false, "out of memory allocating " + std::to_string(bytes) + " bytes");
  }
  auto* block = new Block{ptr, rounded, true};
  live_blocks()[ptr] = block;
  return Napi::ArrayBuffer::New(info.Env(), ptr, static_cast<size_t>(bytes), finalize_block, block);
}

Napi::Value Release(const Napi::CallbackInfo& info) {
  const char* fname = "release";
  TYPE_CHECK(info.Length() >= 1 && info[0].IsArrayBuffer(), "argument 0 must be an ArrayBuffer from alloc()");
  auto ab = info[0].As<Napi::ArrayBuffer>();
  void* ptr = ab.Data();
  auto it = live_blocks().find(ptr);
  if (it == live_blocks().end()) return Napi::Boolean::New(info.Env(), false);  // not ours, or released
  Block* block = it->second;
  live_blocks().erase(it);
  block->live = false;
  cache_free(block->ptr, block->size);
  // Detach so that any stale JS view reads as empty instead of aliasing the reused block.
  ab.Detach();
  return Napi::Boolean::New(info.Env(), true);
}

void finalize_dev_block(Napi::Env, DevBlock* b) {
  if (b->live) {
    b->live = false;
    dev_live_blocks()--;
    cache_free(b->ptr, b->size);
  }
  delete b;
}

// deviceAlloc(bytes) -> block (an External); the memory is freed by deviceFree or when the block is collected.
Napi::Value DeviceAlloc(const Napi::CallbackInfo& info) {
  const char* fname = "deviceAlloc";
  const int64_t bytes = int_arg(info, fname, 0, "bytes");
  CHECK(bytes <= (int64_t(1) << 40), "refusing to allocate " + std::to_string(bytes) + " bytes");
  size_t rounded = 0;
  void* ptr = nullptr;
  try {
    ptr = cache_alloc(static_cast<size_t>(bytes), &rounded);
  } catch (const std::bad_alloc&) {
    CHECK(false, "out of memory allocating " + std::to_string(bytes) + " bytes");
  }
  dev_live_blocks()++;
  return Napi::External<DevBlock>::New(info.Env(), new DevBlock{ptr, rounded, bytes, true}, finalize_dev_block);
}

DevBlock* block_arg(const Napi::CallbackInfo& info, const char* fname, int i) {
  TYPE_CHECK(info.Length() > static_cast<size_t>(i) && info[i].IsExternal(), arg_name(i) + " must be a device block");
  DevBlock* b = info[i].As<Napi::External<DevBlock>>().Data();
  CHECK(b != nullptr && b->live, arg_name(i) + " is a released device block");
  return b;
}

// deviceFree(block): returns the block's memory to the caching allocator now.
Napi::Value DeviceFree(const Napi::CallbackInfo& info) {
  const char* fname = "deviceFree";
  TYPE_CHECK(info.Length() >= 1 && info[0].IsExternal(), "argument 0 must be a device block");
  DevBlock* b = info[0].As<Napi::External<DevBlock>>().Data();
  if (b == nullptr || !b->live) return Napi::Boolean::New(info.Env(), false);
  b->live = false;
  dev_live_blocks()--;
  cache_free(b->ptr, b->size);
  return Napi::Boolean::New(info.Env(), true);
}

// deviceUpload(block, byteOffset, typedArray) / deviceDownload(block, byteOffset, typedArray)
Napi::Value DeviceTransfer(const Napi::CallbackInfo& info, bool upload) {
  const char* fname = upload ? "deviceUpload" : "deviceDownload";
  DevBlock* b = block_arg(info, fname, 0);
  const int64_t off = int_arg(info, fname, 1, "byteOffset");
  TYPE_CHECK(info.Length() > 2 && info[2].IsTypedArray(), "argument 2 must be a typed array");
  auto a = info[2].As<Napi::TypedArray>();
  const int64_t n = static_cast<int64_t>(a.ByteLength());
  CHECK(off <= b->bytes && n <= b->bytes - off, std::to_string(n) + " bytes at offset " + std::to_string(off) +
                                                     " overrun the block's " + std::to_string(b->bytes));
  uint8_t* host = static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
  uint8_t* dev = static_cast<uint8_t*>(b->ptr) + off;
  if (n > 0) {
    if (upload) std::memcpy(dev, host, static_cast<size_t>(n));
    else std::memcpy(host, dev, static_cast<size_t>(n));
  }
  return info.Env().Undefined();
}
Napi::Value DeviceUpload(const Napi::CallbackInfo& info) { return DeviceTransfer(info, true); }
Napi::Value DeviceDownload(const Napi::CallbackInfo& info) { return DeviceTransfer(info, false); }

// deviceCopy(src, srcByteOffset, dst, dstByteOffset, bytes): within or between blocks (memmove).
Napi::Value DeviceCopy(const Napi::CallbackInfo& info) {
  const char* fname = "deviceCopy";
  DevBlock* s = block_arg(info, fname, 0);
  const int64_t so = int_arg(info, fname, 1, "srcByteOffset");
  DevBlock* d = block_arg(info, fname, 2);
  const int64_t dO = int_arg(info, fname, 3, "dstByteOffset");
  const int64_t n = int_arg(info, fname, 4, "bytes");
  CHECK(so <= s->bytes && n <= s->bytes - so, "source range overruns its block");
  CHECK(dO <= d->bytes && n <= d->bytes - dO, "destination range overruns its block");
  if (n > 0) std::memmove(static_cast<uint8_t*>(d->ptr) + dO, static_cast<uint8_t*>(s->ptr) + so, static_cast<size_t>(n));
  return info.Env().Undefined();
}

Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  const AllocatorStats s = cache_stats();
  auto o = Napi::Object::New(info.Env());
  o.Set("bytesInUse", static_cast<double>(s.bytes_in_use));
  o.Set("bytesCached", static_cast<double>(s.bytes_cached));
  o.Set("peakBytesInUse", static_cast<double>(s.peak_bytes_in_use));
  o.Set("freshAllocations", static_cast<double>(s.fresh_allocations));
  o.Set("freshBytes", static_cast<double>(s.fresh_bytes));
  o.Set("reuses", static_cast<double>(s.reuses));
  o.Set("liveBlocks", static_cast<double>(live_blocks().size()));
  o.Set("deviceBlocks", static_cast<double>(dev_live_blocks()));
  return o;
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  cache_empty();
  return info.Env().Undefined();
}

// ---- runtime --------------------------------------------------------------------------

Napi::Value Threads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), num_threads()); }

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  const char* fname = "setThreads";
  const int64_t n = int_arg(info, fname, 0, "threads", 0);
  CHECK(n <= 1024, "at most 1024 threads");
  set_num_threads(static_cast<int>(n));
  return Napi::Number::New(info.Env(), num_threads());
}

Napi::Value Isa(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), kernels().isa); }

Napi::Value SetIsa(const Napi::CallbackInfo& info) {
  const char* fname = "setIsa";
  TYPE_CHECK(info.Length() >= 1 && info[0].IsString(), "argument 0 must be an ISA name");
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  CHECK(name.find('\0') == std::string::npos && set_isa(name.c_str()), "ISA '" + name + "' is unknown or not supported by this CPU (expected avx512, avx2 or portable)");
  return Napi::String::New(info.Env(), kernels().isa);
}

Napi::Value IsaSupported(const Napi::CallbackInfo& info) {
  const char* fname = "isaSupported";
  TYPE_CHECK(info.Length() >= 1 && info[0].IsString(), "argument 0 must be an ISA name");
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  return Napi::Boolean::New(info.Env(), name.find('\0') == std::string::npos && isa_supported(name.c_str()));
}

Napi::Value PeakFlops(const Napi::CallbackInfo& info) {
  const char* fname = "peakFlops";
  const int64_t iters = int_arg(info, fname, 0, "iterations", 1);
  const int threads = num_threads();
  std::vector<double> flops(threads, 0.0);
  const auto t0 = std::chrono::steady_clock::now();
  struct Ctx { int64_t iters; double* flops; };
  Ctx ctx{iters, flops.data()};
  parallel_for(threads, [](void* c, int64_t b, int64_t e) {
    auto* x = static_cast<Ctx*>(c);
    for (int64_t i = b; i < e; i++) x->flops[i] = kernels().fma_peak(x->iters);
  }, &ctx);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double total = 0;
  for (double f : flops) total += f;
  return Napi::Number::New(info.Env(), total / secs);
}

// ---- kernels --------------------------------------------------------------------------

// gemm(ta, tb, M, N, K, batch, alpha, beta, A, lda, strideA, B, ldb, strideB, C, ldc, strideC[, bias[, colsum]])
// bias [N] (or null) is added to every row of C; colsum [N] (or null) accumulates op(B)'s column sums.
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  const char* fname = "gemm";
  GemmArgs g{};
  g.ta = bool_arg(info, fname, 0, "transA");
  g.tb = bool_arg(info, fname, 1, "transB");
  g.M = int_arg(info, fname, 2, "M");
  g.N = int_arg(info, fname, 3, "N");
  g.K = int_arg(info, fname, 4, "K");
  g.batch = int_arg(info, fname, 5, "batch");
  g.alpha = float_arg(info, fname, 6, "alpha");
  g.beta = float_arg(info, fname, 7, "beta");
  auto A = f32_arg(info, fname, 8, "A");
  g.lda = int_arg(info, fname, 9, "lda");
  g.strideA = int_arg(info, fname, 10, "strideA");
  auto B = f32_arg(info, fname, 11, "B");
  g.ldb = int_arg(info, fname, 12, "ldb");
  g.strideB = int_arg(info, fname, 13, "strideB");
  auto C = f32_arg(info, fname, 14, "C");
  g.ldc = int_arg(info, fname, 15, "ldc");
  g.strideC = int_arg(info, fname, 16, "strideC");
  auto bias = f32_arg(info, fname, 17, "bias", true);
  auto colsum = f32_arg(info, fname, 18, "colsum", true);
  CHECK(bias.p == nullptr || bias.n >= g.N, "bias has " + std::to_string(bias.n) + " elements; expected N = " + std::to_string(g.N));
  CHECK(colsum.p == nullptr || colsum.n >= g.N, "colsum has " + std::to_string(colsum.n) + " elements; expected N = " + std::to_string(g.N));
  const int64_t arows = g.ta ? g.K : g.M, acols = g.ta ? g.M : g.K;
  const int64_t brows = g.tb ? g.N : g.K, bcols = g.tb ? g.K : g.N;
  CHECK(g.lda >= acols, "lda " + std::to_string(g.lda) + " < row length " + std::to_string(acols));
  CHECK(g.ldb >= bcols, "ldb " + std::to_string(g.ldb) + " < row length " + std::to_string(bcols));
  CHECK(g.ldc >= g.N, "ldc " + std::to_string(g.ldc) + " < N " + std::to_string(g.N));
  if (g.batch > 0 && g.M > 0 && g.N > 0) {
    if (g.K > 0) {
      need(info, fname, A, extent({g.batch, arows, acols}, {g.strideA, g.lda, 1}), "A");
      need(info, fname, B, extent({g.batch, brows, bcols}, {g.strideB, g.ldb, 1}), "B");
    }
    need(info, fname, C, extent({g.batch, g.M, g.N}, {g.strideC, g.ldc, 1}), "C");
  }
  g.A = A.p;
  g.B = B.p;
  g.C = C.p;
  g.bias = bias.p;
  g.colsum = colsum.p;
  if (g.batch > 0) kernels().gemm(g);
  return info.Env().Undefined();
}

struct Broadcast {
  std::vector<int64_t> shape, sa, sb;
};

Broadcast broadcast_args(const Napi::CallbackInfo& info, const char* fname, int i) {
  Broadcast bc{dims_arg(info, fname, i, "shape"), dims_arg(info, fname, i + 1, "stridesA"),
               dims_arg(info, fname, i + 2, "stridesB")};
  CHECK(bc.sa.size() == bc.shape.size() && bc.sb.size() == bc.shape.size(),
        "strides must have one entry per dimension of shape (" + std::to_string(bc.shape.size()) + ")");
  return bc;
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n = mul_sat(n, d);
  return n;
}

int op_arg(const Napi::CallbackInfo& info, const char* fname, int i, int max_op) {
  const int64_t op = int_arg(info, fname, i, "op");
  CHECK(op <= max_op, "unknown op code " + std::to_string(op));
  return static_cast<int>(op);
}

// binaryForward(op, shape, stridesA, stridesB, a, b, out)
Napi::Value BinaryForward(const Napi::CallbackInfo& info) {
  const char* fname = "binaryForward";
  const int op = op_arg(info, fname, 0, kDiv);
  Broadcast bc = broadcast_args(info, fname, 1);
  auto a = f32_arg(info, fname, 4, "a");
  auto b = f32_arg(info, fname, 5, "b");
  auto out = f32_arg(info, fname, 6, "out");
  need(info, fname, a, extent(bc.shape, bc.sa), "a");
  need(info, fname, b, extent(bc.shape, bc.sb), "b");
  need(info, fname, out, numel(bc.shape), "out");
  if (numel(bc.shape) > 0)
    kernels().binary_forward(op, static_cast<int>(bc.shape.size()), bc.shape.data(), a.p, bc.sa.data(), b.p,
                             bc.sb.data(), out.p);
  return info.Env().Undefined();
}

// binaryBackward(op, shape, stridesA, stridesB, a, b, gout, ga|null, gb|null); ga/gb accumulate
Napi::Value BinaryBackward(const Napi::CallbackInfo& info) {
  const char* fname = "binaryBackward";
  const int op = op_arg(info, fname, 0, kDiv);
  Broadcast bc = broadcast_args(info, fname, 1);
  auto a = f32_arg(info, fname, 4, "a");
  auto b = f32_arg(info, fname, 5, "b");
  auto g = f32_arg(info, fname, 6, "gout");
  auto ga = f32_arg(info, fname, 7, "ga", true);
  auto gb = f32_arg(info, fname, 8, "gb", true);
  need(info, fname, a, extent(bc.shape, bc.sa), "a");
  need(info, fname, b, extent(bc.shape, bc.sb), "b");
  need(info, fname, g, numel(bc.shape), "gout");
  if (ga.p) need(info, fname, ga, extent(bc.shape, bc.sa), "ga");
  if (gb.p) need(info, fname, gb, extent(bc.shape, bc.sb), "gb");
  if (numel(bc.shape) > 0)
    kernels().binary_backward(op, static_cast<int>(bc.shape.size()), bc.shape.data(), a.p, bc.sa.data(), b.p,
                              bc.sb.data(), g.p, ga.p, gb.p);
  return info.Env().Undefined();
}

// unaryForward(op, n, x, y, alpha)
Napi::Value UnaryForward(const Napi::CallbackInfo& info) {
  const char* fname = "unaryForward";
  const int op = op_arg(info, fname, 0, kSigmoid);
  const int64_t n = int_arg(info, fname, 1, "n");
  auto x = f32_arg(info, fname, 2, "x");
  auto y = f32_arg(info, fname, 3, "y");
  const float alpha = float_arg(info, fname, 4, "alpha");
  need(info, fname, x, n, "x");
  need(info, fname, y, n, "y");
  kernels().unary_forward(op, n, x.p, y.p, alpha);
  return info.Env().Undefined();
}

// unaryBackward(op, n, x, y, gy, gx, alpha, acc)
Napi::Value UnaryBackward(const Napi::CallbackInfo& info) {
  const char* fname = "unaryBackward";
  const int op = op_arg(info, fname, 0, kSigmoid);
  const int64_t n = int_arg(info, fname, 1, "n");
  auto x = f32_arg(info, fname, 2, "x");
  auto y = f32_arg(info, fname, 3, "y");
  auto gy = f32_arg(info, fname, 4, "gy");
  auto gx = f32_arg(info, fname, 5, "gx");
  const float alpha = float_arg(info, fname, 6, "alpha");
  const bool acc = bool_arg(info, fname, 7, "acc");
  for (auto* b : {&x, &y, &gy, &gx}) need(info, fname, *b, n, "operand");
  kernels().unary_backward(op, n, x.p, y.p, gy.p, gx.p, alpha, acc);
  return info.Env().Undefined();
}

// reduceForward(op, outer, n, inner, x, out)
Napi::Value ReduceForward(const Napi::CallbackInfo& info) {
  const char* fname = "reduceForward";
  const int op = op_arg(info, fname, 0, kMax);
  const int64_t outer = int_arg(info, fname, 1, "outer"), n = int_arg(info, fname, 2, "n"),
                inner = int_arg(info, fname, 3, "inner");
  auto x = f32_arg(info, fname, 4, "x");
  auto out = f32_arg(info, fname, 5, "out");
  CHECK(n > 0 || op != kMax, "max over an empty axis");
  need(info, fname, x, mul_sat(outer, n, inner), "x");
  need(info, fname, out, mul_sat(outer, inner), "out");
  kernels().reduce_forward(op, outer, n, inner, x.p, out.p);
  return info.Env().Undefined();
}

// reduceBackward(op, outer, n, inner, gout, gx, acc)
Napi::Value ReduceBackward(const Napi::CallbackInfo& info) {
  const char* fname = "reduceBackward";
  const int op = op_arg(info, fname, 0, kMean);
  const int64_t outer = int_arg(info, fname, 1, "outer"), n = int_arg(info, fname, 2, "n"),
                inner = int_arg(info, fname, 3, "inner");
  auto g = f32_arg(info, fname, 4, "gout");
  auto gx = f32_arg(info, fname, 5, "gx");
  const bool acc = bool_arg(info, fname, 6, "acc");
  need(info, fname, g, mul_sat(outer, inner), "gout");
  need(info, fname, gx, mul_sat(outer, n, inner), "gx");
  kernels().reduce_backward(op, outer, n, inner, g.p, gx.p, acc);
  return info.Env().Undefined();
}

// softmaxForward(rows, n, x, y)
Napi::Value SoftmaxForward(const Napi::CallbackInfo& info) {
  const char* fname = "softmaxForward";
  const int64_t rows = int_arg(info, fname, 0, "rows"), n = int_arg(info, fname, 1, "n");
  auto x = f32_arg(info, fname, 2, "x");
  auto y = f32_arg(info, fname, 3, "y");
  need(info, fname, x, mul_sat(rows, n), "x");
  need(info, fname, y, mul_sat(rows, n), "y");
  kernels().softmax_forward(rows, n, x.p, y.p);
  return info.Env().Undefined();
}

// softmaxBackward(rows, n, y, gy, gx, acc)
Napi::Value SoftmaxBackward(const Napi::CallbackInfo& info) {
  const char* fname = "softmaxBackward";
  const int64_t rows = int_arg(info, fname, 0, "rows"), n = int_arg(info, fname, 1, "n");
  auto y = f32_arg(info, fname, 2, "y");
  auto gy = f32_arg(info, fname, 3, "gy");
  auto gx = f32_arg(info, fname, 4, "gx");
  const bool acc = bool_arg(info, fname, 5, "acc");
  for (auto* b : {&y, &gy, &gx}) need(info, fname, *b, mul_sat(rows, n), "operand");
  kernels().softmax_backward(rows, n, y.p, gy.p, gx.p, acc);
  return info.Env().Undefined();
}

// layernormForward(rows, C, x, w, b, eps, y, mean|null, rstd|null)
Napi::Value LayernormForward(const Napi::CallbackInfo& info) {
  const char* fname = "layernormForward";
  const int64_t rows = int_arg(info, fname, 0, "rows"), C = int_arg(info, fname, 1, "C", 1);
  auto x = f32_arg(info, fname, 2, "x");
  auto w = f32_arg(info, fname, 3, "weight");
  auto b = f32_arg(info, fname, 4, "bias");
  const float eps = float_arg(info, fname, 5, "eps");
  auto y = f32_arg(info, fname, 6, "y");
  auto mean = f32_arg(info, fname, 7, "mean", true);
  auto rstd = f32_arg(info, fname, 8, "rstd", true);
  need(info, fname, x, mul_sat(rows, C), "x");
  need(info, fname, y, mul_sat(rows, C), "y");
  need(info, fname, w, C, "weight");
  need(info, fname, b, C, "bias");
  if (mean.p) need(info, fname, mean, rows, "mean");
  if (rstd.p) need(info, fname, rstd, rows, "rstd");
  kernels().layernorm_forward(rows, C, x.p, w.p, b.p, eps, y.p, mean.p, rstd.p);
  return info.Env().Undefined();
}

// layernormBackward(rows, C, x, w, mean, rstd, gy, gx, gw, gb, acc)  (gw, gb always accumulate)
Napi::Value LayernormBackward(const Napi::CallbackInfo& info) {
  const char* fname = "layernormBackward";
  const int64_t rows = int_arg(info, fname, 0, "rows"), C = int_arg(info, fname, 1, "C", 1);
  auto x = f32_arg(info, fname, 2, "x");
  auto w = f32_arg(info, fname, 3, "weight");
  auto mean = f32_arg(info, fname, 4, "mean");
  auto rstd = f32_arg(info, fname, 5, "rstd");
  auto gy = f32_arg(info, fname, 6, "gy");
  auto gx = f32_arg(info, fname, 7, "gx");
  auto gw = f32_arg(info, fname, 8, "gw");
  auto gb = f32_arg(info, fname, 9, "gb");
  const bool acc = bool_arg(info, fname, 10, "acc");
  for (auto* b : {&x, &gy, &gx}) need(info, fname, *b, mul_sat(rows, C), "activation");
  for (auto* b : {&w, &gw, &gb}) need(info, fname, *b, C, "parameter");
  need(info, fname, mean, rows, "mean");
  need(info, fname, rstd, rows, "rstd");
  kernels().layernorm_backward(rows, C, x.p, w.p, mean.p, rstd.p, gy.p, gx.p, gw.p, gb.p, acc);
  return info.Env().Undefined();
}

// geluForward(n, x, y)
Napi::Value GeluForward(const Napi::CallbackInfo& info) {
  const char* fname = "geluForward";
  const int64_t n = int_arg(info, fname, 0, "n");
  auto x = f32_arg(info, fname, 1, "x");
  auto y = f32_arg(info, fname, 2, "y");
  need(info, fname, x, n, "x");
  need(info, fname, y, n, "y");
  kernels().gelu_forward(n, x.p, y.p);
  return info.Env().Undefined();
}

// geluBackward(n, x, gy, gx, acc)
Napi::Value GeluBackward(const Napi::CallbackInfo& info) {
  const char* fname = "geluBackward";
  const int64_t n = int_arg(info, fname, 0, "n");
  auto x = f32_arg(info, fname, 1, "x");
  auto gy = f32_arg(info, fname, 2, "gy");
  auto gx = f32_arg(info, fname, 3, "gx");
  const bool acc = bool_arg(info, fname, 4, "acc");
  for (auto* b : {&x, &gy, &gx}) need(info, fname, *b, n, "operand");
  kernels().gelu_backward(n, x.p, gy.p, gx.p, acc);
  return info.Env().Undefined();
}

// embeddingForward(n, C, V, ids, table, out)
Napi::Value EmbeddingForward(const Napi::CallbackInfo& info) {
  const char* fname = "embeddingForward";
  const int64_t n = int_arg(info, fname, 0, "n"), C = int_arg(info, fname, 1, "C"), V = int_arg(info, fname, 2, "V");
  auto ids = i32_arg(info, fname, 3, "ids");
  auto table = f32_arg(info, fname, 4, "table");
  auto out = f32_arg(info, fname, 5, "out");
  need(info, fname, ids, n, "ids");
  need(info, fname, table, mul_sat(V, C), "table");
  need(info, fname, out, mul_sat(n, C), "out");
  check_ids(info, fname, ids, n, V, false);
  kernels().embedding_forward(n, C, ids.p, table.p, out.p);
  return info.Env().Undefined();
}

// embeddingBackward(n, C, V, ids, gout, gtable)  (accumulates)
Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  const char* fname = "embeddingBackward";
  const int64_t n = int_arg(info, fname, 0, "n"), C = int_arg(info, fname, 1, "C"), V = int_arg(info, fname, 2, "V");
  auto ids = i32_arg(info, fname, 3, "ids");
  auto g = f32_arg(info, fname, 4, "gout");
  auto gt = f32_arg(info, fname, 5, "gtable");
  need(info, fname, ids, n, "ids");
  need(info, fname, g, mul_sat(n, C), "gout");
  need(info, fname, gt, mul_sat(V, C), "gtable");
  check_ids(info, fname, ids, n, V, false);
  kernels().embedding_backward(n, C, ids.p, g.p, gt.p);
  return info.Env().Undefined();
}

// attention{Forward,Backward}(dims[B,Tq,Tk,NH,HS], scale, causal,
//   q, q_bs, q_ts, k, k_bs, k_ts, v, v_bs, v_ts, o, o_bs, o_ts, lse, [go, gq, gk, gv, acc])
AttentionArgs attention_args(const Napi::CallbackInfo& info, const char* fname, bool backward) {
  AttentionArgs a{};
  auto dims = dims_arg(info, fname, 0, "dims");
  CHECK(dims.size() == 5, "dims must be [B, Tq, Tk, NH, HS]");
  a.B = dims[0]; a.Tq = dims[1]; a.Tk = dims[2]; a.NH = dims[3]; a.HS = dims[4];
  CHECK(!(a.Tq > a.Tk && a.B > 0), "Tq " + std::to_string(a.Tq) + " > Tk " + std::to_string(a.Tk));
  a.scale = float_arg(info, fname, 1, "scale");
  a.causal = bool_arg(info, fname, 2, "causal");
  auto q = f32_arg(info, fname, 3, "q");
  a.q_bs = int_arg(info, fname, 4, "q batch stride"); a.q_ts = int_arg(info, fname, 5, "q row stride");
  auto k = f32_arg(info, fname, 6, "k");
  a.k_bs = int_arg(info, fname, 7, "k batch stride"); a.k_ts = int_arg(info, fname, 8, "k row stride");
  auto v = f32_arg(info, fname, 9, "v");
  a.v_bs = int_arg(info, fname, 10, "v batch stride"); a.v_ts = int_arg(info, fname, 11, "v row stride");
  auto o = f32_arg(info, fname, 12, "o");
  a.o_bs = int_arg(info, fname, 13, "o batch stride"); a.o_ts = int_arg(info, fname, 14, "o row stride");
  // Rows must be backed by distinct memory: with HS = 0 or a zero row stride no buffer bounds
  // T, and the kernels' per-row loops and O(Tk) scratch would grow without limit.
  if (mul_sat(a.B, a.Tq, a.NH) > 0) {
    CHECK(a.HS >= 1, "HS must be >= 1, got " + std::to_string(a.HS));
    CHECK((a.Tq <= 1 || (a.q_ts >= 1 && a.o_ts >= 1)) && (a.Tk <= 1 || (a.k_ts >= 1 && a.v_ts >= 1)),
          "row strides must be >= 1 when there is more than one row");
  }
  auto lse = f32_arg(info, fname, 15, "lse", !backward);
  const int64_t C = mul_sat(a.NH, a.HS);
  auto ext = [&](int64_t bs, int64_t ts, int64_t T) { return extent({a.B, T, C}, {bs, ts, 1}); };
  need(info, fname, q, ext(a.q_bs, a.q_ts, a.Tq), "q");
  need(info, fname, k, ext(a.k_bs, a.k_ts, a.Tk), "k");
  need(info, fname, v, ext(a.v_bs, a.v_ts, a.Tk), "v");
  need(info, fname, o, ext(a.o_bs, a.o_ts, a.Tq), "o");
  if (lse.p) need(info, fname, lse, mul_sat(a.B, a.NH, a.Tq), "lse");
  a.q = q.p; a.k = k.p; a.v = v.p; a.o = o.p; a.lse = lse.p;
  if (backward) {
    auto go = f32_arg(info, fname, 16, "go");
    auto gq = f32_arg(info, fname, 17, "gq");
    auto gk = f32_arg(info, fname, 18, "gk");
    auto gv = f32_arg(info, fname, 19, "gv");
    a.acc = bool_arg(info, fname, 20, "acc");
    need(info, fname, go, ext(a.o_bs, a.o_ts, a.Tq), "go");
    need(info, fname, gq, ext(a.q_bs, a.q_ts, a.Tq), "gq");
    need(info, fname, gk, ext(a.k_bs, a.k_ts, a.Tk), "gk");
    need(info, fname, gv, ext(a.v_bs, a.v_ts, a.Tk), "gv");
    a.go = go.p; a.gq = gq.p; a.gk = gk.p; a.gv = gv.p;
  }
  return a;
}

// A trailing `true` (argument 16 forward, 21 backward) runs the products in bf16 (lowp.h).
bool bf16_flag(const Napi::CallbackInfo& info, const char* fname, int i) {
  if (info.Length() <= static_cast<size_t>(i) || info[i].IsUndefined()) return false;
  return bool_arg(info, fname, i, "bf16");
}

Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  AttentionArgs a = attention_args(info, "attentionForward", false);
  const bool bf16 = bf16_flag(info, "attentionForward", 16);
  if (mul_sat(a.B, a.Tq, a.NH) > 0) (bf16 ? lowp().attention_forward_bf16 : kernels().attention_forward)(a);
  return info.Env().Undefined();
}

Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  AttentionArgs a = attention_args(info, "attentionBackward", true);
  const bool bf16 = bf16_flag(info, "attentionBackward", 21);
  if (mul_sat(a.B, a.Tq, a.NH) > 0) (bf16 ? lowp().attention_backward_bf16 : kernels().attention_backward)(a);
  return info.Env().Undefined();
}

// crossEntropyForward(N, V, logits, targets, lse, losses) -> sum of losses
Napi::Value CrossEntropyForward(const Napi::CallbackInfo& info) {
  const char* fname = "crossEntropyForward";
  const int64_t N = int_arg(info, fname, 0, "N"), V = int_arg(info, fname, 1, "V", 1);
  auto logits = f32_arg(info, fname, 2, "logits");
  auto t = i32_arg(info, fname, 3, "targets");
  auto lse = f32_arg(info, fname, 4, "lse");
  auto losses = f32_arg(info, fname, 5, "losses");
  need(info, fname, logits, mul_sat(N, V), "logits");
  need(info, fname, t, N, "targets");
  need(info, fname, lse, N, "lse");
  need(info, fname, losses, N, "losses");
  check_ids(info, fname, t, N, V, true);
  return Napi::Number::New(info.Env(), kernels().cross_entropy_forward(N, V, logits.p, t.p, lse.p, losses.p));
}

// crossEntropyBackward(N, V, logits, targets, lse, scale, glogits)
Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info) {
  const char* fname = "crossEntropyBackward";
  const int64_t N = int_arg(info, fname, 0, "N"), V = int_arg(info, fname, 1, "V", 1);
  auto logits = f32_arg(info, fname, 2, "logits");
  auto t = i32_arg(info, fname, 3, "targets");
  auto lse = f32_arg(info, fname, 4, "lse");
  const float scale = float_arg(info, fname, 5, "scale");
  auto g = f32_arg(info, fname, 6, "glogits");
  need(info, fname, logits, mul_sat(N, V), "logits");
  need(info, fname, t, N, "targets");
  need(info, fname, lse, N, "lse");
  need(info, fname, g, mul_sat(N, V), "glogits");
  check_ids(info, fname, t, N, V, true);
  kernels().cross_entropy_backward(N, V, logits.p, t.p, lse.p, scale, g.p);
  return info.Env().Undefined();
}

// adamwStep(n, p, g, m, v, lr, beta1, beta2, eps, weightDecay, bc1, bc2)
Napi::Value AdamwStep(const Napi::CallbackInfo& info) {
  const char* fname = "adamwStep";
  const int64_t n = int_arg(info, fname, 0, "n");
  auto p = f32_arg(info, fname, 1, "param");
  auto g = f32_arg(info, fname, 2, "grad");
  auto m = f32_arg(info, fname, 3, "m");
  auto v = f32_arg(info, fname, 4, "v");
  for (auto* b : {&p, &g, &m, &v}) need(info, fname, *b, n, "operand");
  const float lr = float_arg(info, fname, 5, "lr"), b1 = float_arg(info, fname, 6, "beta1"),
              b2 = float_arg(info, fname, 7, "beta2"), eps = float_arg(info, fname, 8, "eps"),
              wd = float_arg(info, fname, 9, "weightDecay"), bc1 = float_arg(info, fname, 10, "bc1"),
              bc2 = float_arg(info, fname, 11, "bc2");
  CHECK(bc1 > 0 && bc2 > 0, "bias corrections must be positive");
  kernels().adamw_step(n, p.p, g.p, m.p, v.p, lr, b1, b2, eps, wd, bc1, bc2);
  return info.Env().Undefined();
}

// sumSquares(n, x) -> double
Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  const char* fname = "sumSquares";
  const int64_t n = int_arg(info, fname, 0, "n");
  auto x = f32_arg(info, fname, 1, "x");
  need(info, fname, x, n, "x");
  return Napi::Number::New(info.Env(), kernels().sum_squares(n, x.p));
}

// axpy(n, alpha, x, y): y += alpha x
Napi::Value Axpy(const Napi::CallbackInfo& info) {
  const char* fname = "axpy";
  const int64_t n = int_arg(info, fname, 0, "n");
  const float alpha = float_arg(info, fname, 1, "alpha");
  auto x = f32_arg(info, fname, 2, "x");
  auto y = f32_arg(info, fname, 3, "y");
  need(info, fname, x, n, "x");
  need(info, fname, y, n, "y");
  kernels().axpy(n, alpha, x.p, y.p);
  return info.Env().Undefined();
}

// fill(n, x, value)
Napi::Value Fill(const Napi::CallbackInfo& info) {
  const char* fname = "fill";
  const int64_t n = int_arg(info, fname, 0, "n");
  auto x = f32_arg(info, fname, 1, "x");
  const float value = float_arg(info, fname, 2, "value");
  need(info, fname, x, n, "x");
  kernels().fill(n, x.p, value);
  return info.Env().Undefined();
}

// copyStrided(shape, strides, src, dst)
Napi::Value CopyStrided(const Napi::CallbackInfo& info) {
  const char* fname = "copyStrided";
  auto shape = dims_arg(info, fname, 0, "shape");
  auto strides = dims_arg(info, fname, 1, "strides");
  CHECK(strides.size() == shape.size(), "strides must have one entry per dimension");
  auto src = f32_arg(info, fname, 2, "src");
  auto dst = f32_arg(info, fname, 3, "dst");
  need(info, fname, src, extent(shape, strides), "src");
  need(info, fname, dst, numel(shape), "dst");
  if (numel(shape) > 0)
    kernels().copy_strided(static_cast<int>(shape.size()), shape.data(), src.p, strides.data(), dst.p);
  return info.Env().Undefined();
}

uint64_t seed_arg(const Napi::CallbackInfo& info, const char* fname, int i) {
  const int64_t s = int_arg(info, fname, i, "seed");
  return static_cast<uint64_t>(s);
}

// dropoutForward(n, x, y, p, seed)
Napi::Value DropoutForward(const Napi::CallbackInfo& info) {
  const char* fname = "dropoutForward";
  const int64_t n = int_arg(info, fname, 0, "n");
  auto x = f32_arg(info, fname, 1, "x");
  auto y = f32_arg(info, fname, 2, "y");
  const float p = float_arg(info, fname, 3, "p");
  const uint64_t seed = seed_arg(info, fname, 4);
  CHECK(p >= 0.0f && p < 1.0f, "p must be in [0, 1)");
  need(info, fname, x, n, "x");
  need(info, fname, y, n, "y");
  kernels().dropout_forward(n, x.p, y.p, p, seed);
  return info.Env().Undefined();
}

// dropoutBackward(n, gy, gx, p, seed, acc)
Napi::Value DropoutBackward(const Napi::CallbackInfo& info) {
  const char* fname = "dropoutBackward";
  const int64_t n = int_arg(info, fname, 0, "n");
  auto gy = f32_arg(info, fname, 1, "gy");
  auto gx = f32_arg(info, fname, 2, "gx");
  const float p = float_arg(info, fname, 3, "p");
  const uint64_t seed = seed_arg(info, fname, 4);
  const bool acc = bool_arg(info, fname, 5, "acc");
  CHECK(p >= 0.0f && p < 1.0f, "p must be in [0, 1)");
  need(info, fname, gy, n, "gy");
  need(info, fname, gx, n, "gx");
  kernels().dropout_backward(n, gy.p, gx.p, p, seed, acc);
  return info.Env().Undefined();
}

#include "lowp_bindings.inc"

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  const std::pair<const char*, Napi::Value (*)(const Napi::CallbackInfo&)> fns[] = {
      {"alloc", Alloc}, {"release", Release}, {"memoryStats", MemoryStats}, {"emptyCache", EmptyCache},
      {"threads", Threads}, {"setThreads", SetThreads}, {"isa", Isa}, {"setIsa", SetIsa},
      {"isaSupported", IsaSupported}, {"peakFlops", PeakFlops}, {"gemm", Gemm},
      {"binaryForward", BinaryForward}, {"binaryBackward", BinaryBackward}, {"unaryForward", UnaryForward},
      {"unaryBackward", UnaryBackward}, {"reduceForward", ReduceForward}, {"reduceBackward", ReduceBackward},
      {"softmaxForward", SoftmaxForward}, {"softmaxBackward", SoftmaxBackward},
      {"layernormForward", LayernormForward}, {"layernormBackward", LayernormBackward},
      {"geluForward", GeluForward}, {"geluBackward", GeluBackward}, {"embeddingForward", EmbeddingForward},
      {"embeddingBackward", EmbeddingBackward}, {"attentionForward", AttentionForward},
      {"attentionBackward", AttentionBackward}, {"crossEntropyForward", CrossEntropyForward},
      {"crossEntropyBackward", CrossEntropyBackward}, {"adamwStep", AdamwStep}, {"sumSquares", SumSquares},
      {"axpy", Axpy}, {"fill", Fill}, {"copyStrided", CopyStrided}, {"dropoutForward", DropoutForward},
      {"dropoutBackward", DropoutBackward}, {"gemmBf16", GemmBf16}, {"packBf16", PackBf16},
      {"packInt8", PackInt8}, {"packedSizes", PackedSizes}, {"linearBf16", LinearBf16}, {"linearInt8", LinearInt8},
      {"linearF32", LinearF32}, {"decodeLayer", DecodeLayer},
      {"lowpPath", LowpPath}, {"lowpNativeSupported", LowpNativeSupported}, {"setLowpNative", SetLowpNative},
      {"lowpAmxSupported", LowpAmxSupported}, {"setLowpAmx", SetLowpAmx},
      {"peakBf16", PeakBf16}, {"peakInt8", PeakInt8}, {"memoryBandwidth", MemoryBandwidth}, {"deviceAlloc", DeviceAlloc},
      {"deviceFree", DeviceFree}, {"deviceUpload", DeviceUpload}, {"deviceDownload", DeviceDownload}, {"deviceCopy", DeviceCopy}};
  for (const auto& [name, fn] : fns) exports.Set(name, Napi::Function::New(env, fn, name));
  return exports;
}

}  // namespace
}  // namespace plinth

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return plinth::Init(env, exports); }

NODE_API_MODULE(plinth_native, InitAddon)
