// plinth_mpi: the optional MPI binding for data-parallel training (src/native/mpi.ts).
//
// One communication thread owns MPI: it calls MPI_Init_thread (FUNNELED is enough, since no
// other thread makes MPI calls), then runs the collectives JS enqueues, in the order they were
// enqueued, so every rank issues the same sequence. JS gets an operation id at once and later
// polls it (test) or blocks on it with a timeout (wait), so a backward pass keeps computing
// while a gradient bucket is being summed. The buffers stay referenced until JS collects the
// result. Errors from MPI are returned (MPI_ERRORS_RETURN), not fatal, and carry the rank.
//
// Shapes: n = elements of a float32 buffer; P = world size.
//   allreduce(buf[n], scale)          buf = scale * sum over ranks of buf          (in place)
//   reduceScatter(src[n], dst[n/P])   dst = sum over ranks of src[rank*n/P : (rank+1)*n/P]
//   allgather(src[m], dst[m*P])       dst[r*m : (r+1)*m] = src of rank r
//   broadcast(buf[n], root)           buf = buf of rank root                       (in place)
//   barrier()
#include <dlfcn.h>
#include <mpi.h>
#include <napi.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <algorithm>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

namespace {

#define CHECK(cond, msg)                                                                                   \
  do {                                                                                                     \
    if (!(cond))                                                                                           \
      throw Napi::RangeError::New(info.Env(), std::string("mpi.") + fname + ": " + (msg) + " (" __FILE__ ":" + \
                                                  std::to_string(__LINE__) + ")");                         \
  } while (0)

enum class Kind { AllReduce, ReduceScatter, AllGather, Broadcast, Barrier, Finalize };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::AllReduce: return "allreduce";
    case Kind::ReduceScatter: return "reduceScatter";
    case Kind::AllGather: return "allgather";
    case Kind::Broadcast: return "broadcast";
    case Kind::Barrier: return "barrier";
    case Kind::Finalize: return "finalize";
  }
  return "?";
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Op {
  int64_t id;
  Kind kind;
  float* src = nullptr;
  float* dst = nullptr;
  int64_t n = 0;
  int root = 0;
  float scale = 1.0f;
  bool done = false;
  std::string error;
  double start = 0, end = 0;
  // The typed arrays the op reads and writes, kept alive until JS collects the result.
  std::vector<Napi::Reference<Napi::Value>> keep;
};

struct Comm {
  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Op*> queue;
  std::unordered_map<int64_t, std::unique_ptr<Op>> ops;
  int64_t next_id = 1;
  bool started = false, ready = false, finalized = false;
  int rank = -1, size = 0, provided = -1;
  std::string init_error;
};

Comm comm;

std::string mpi_error(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  return std::string(text, len);
}

// Waits for a non-blocking collective by polling MPI_Test with short sleeps rather than
// spinning inside a blocking call: ranks share cores with compute threads (theirs and their
// peers'), and a spinning wait would steal the very cycles the slowest rank needs.
int finish(MPI_Request* req) {
  int done = 0;
  int64_t sleep_us = 0;
  for (;;) {
    const int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS || done) return rc;
    if (sleep_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
    sleep_us = sleep_us == 0 ? 5 : std::min<int64_t>(sleep_us * 2, 200);
  }
}

int run_op(Op* op) {
  MPI_Request req = MPI_REQUEST_NULL;
  int rc = MPI_SUCCESS;
  const int n = static_cast<int>(op->n);
  switch (op->kind) {
    case Kind::AllReduce:
      rc = MPI_Iallreduce(MPI_IN_PLACE, op->src, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
      if (rc == MPI_SUCCESS) rc = finish(&req);
      if (rc == MPI_SUCCESS && op->scale != 1.0f)
        for (int64_t i = 0; i < op->n; i++) op->src[i] *= op->scale;
      return rc;
    case Kind::ReduceScatter:
      rc = MPI_Ireduce_scatter_block(op->src, op->dst, n / comm.size, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
      if (rc == MPI_SUCCESS) rc = finish(&req);
      if (rc == MPI_SUCCESS && op->scale != 1.0f)
        for (int64_t i = 0; i < op->n / comm.size; i++) op->dst[i] *= op->scale;
      return rc;
    case Kind::AllGather:
      rc = MPI_Iallgather(op->src, n, MPI_FLOAT, op->dst, n, MPI_FLOAT, MPI_COMM_WORLD, &req);
      return rc == MPI_SUCCESS ? finish(&req) : rc;
    case Kind::Broadcast:
      rc = MPI_Ibcast(op->src, n, MPI_FLOAT, op->root, MPI_COMM_WORLD, &req);
      return rc == MPI_SUCCESS ? finish(&req) : rc;
    case Kind::Barrier:
      rc = MPI_Ibarrier(MPI_COMM_WORLD, &req);
      return rc == MPI_SUCCESS ? finish(&req) : rc;
    case Kind::Finalize:
      return MPI_Finalize();
  }
  return MPI_SUCCESS;
}

void comm_main() {
  // Open MPI loads its components with dlopen and they need libmpi's symbols global; node loaded
  // this addon (and so libmpi) RTLD_LOCAL, so promote it first (as mpi4py does).
  for (const char* lib : {"libmpi.so.40", "libmpi.so.12", "libmpi.so"}) {
    if (dlopen(lib, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD) != nullptr) break;
  }
  int provided = -1;
  int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  {
    std::lock_guard<std::mutex> lock(comm.mu);
    if (rc != MPI_SUCCESS) {
      comm.init_error = "MPI_Init_thread failed with code " + std::to_string(rc);
    } else {
      MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
      MPI_Comm_rank(MPI_COMM_WORLD, &comm.rank);
      MPI_Comm_size(MPI_COMM_WORLD, &comm.size);
      comm.provided = provided;
    }
    comm.ready = true;
  }
  comm.cv.notify_all();
  if (rc != MPI_SUCCESS) return;
  for (;;) {
    Op* op;
    {
      std::unique_lock<std::mutex> lock(comm.mu);
      comm.cv.wait(lock, [] { return !comm.queue.empty(); });
      op = comm.queue.front();
      comm.queue.pop_front();
    }
    const double start = now_seconds();
    const int code = run_op(op);
    const double end = now_seconds();
    {
      std::lock_guard<std::mutex> lock(comm.mu);
      op->start = start;
      op->end = end;
      if (code != MPI_SUCCESS)
        op->error = std::string(kind_name(op->kind)) + " of " + std::to_string(op->n) + " floats failed on rank " +
                    std::to_string(comm.rank) + ": " + mpi_error(code);
      op->done = true;
    }
    comm.cv.notify_all();
    if (op->kind == Kind::Finalize) return;
  }
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  const char* fname = "init";
  std::unique_lock<std::mutex> lock(comm.mu);
  CHECK(!comm.finalized, "MPI was already finalized in this process");
  if (!comm.started) {
    comm.started = true;
    comm.thread = std::thread(comm_main);
  }
  comm.cv.wait(lock, [] { return comm.ready; });
  if (!comm.init_error.empty()) throw Napi::Error::New(info.Env(), "mpi.init: " + comm.init_error);
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("rank", comm.rank);
  out.Set("size", comm.size);
  out.Set("threadLevel", comm.provided);
  return out;
}

float* floats(const Napi::CallbackInfo& info, const char* fname, int i, int64_t* n) {
  CHECK(info.Length() > static_cast<size_t>(i) && info[i].IsTypedArray() &&
            info[i].As<Napi::TypedArray>().TypedArrayType() == napi_float32_array,
        "argument " + std::to_string(i) + " must be a Float32Array");
  auto a = info[i].As<Napi::Float32Array>();
  *n = static_cast<int64_t>(a.ElementLength());
  return a.Data();
}

void check_running(const Napi::CallbackInfo& info, const char* fname) {
  std::lock_guard<std::mutex> lock(comm.mu);
  CHECK(comm.ready && comm.init_error.empty(), "call mpi.init() first");
  CHECK(!comm.finalized, "MPI was already finalized");
}

Napi::Value Enqueue(const Napi::CallbackInfo& info, std::unique_ptr<Op> op, std::initializer_list<int> keep_args) {
  for (int i : keep_args) op->keep.push_back(Napi::Persistent(info[i]));
  int64_t id;
  {
    std::lock_guard<std::mutex> lock(comm.mu);
    id = op->id = comm.next_id++;
    comm.queue.push_back(op.get());
    comm.ops.emplace(id, std::move(op));
  }
  comm.cv.notify_all();
  return Napi::Number::New(info.Env(), static_cast<double>(id));
}

constexpr int64_t kMaxCount = 2147483647;

Napi::Value AllReduce(const Napi::CallbackInfo& info) {
  const char* fname = "allreduce";
  check_running(info, fname);
  auto op = std::make_unique<Op>();
  op->kind = Kind::AllReduce;
  op->src = floats(info, fname, 0, &op->n);
  CHECK(op->n <= kMaxCount, "at most 2^31-1 elements per call");
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    CHECK(info[1].IsNumber(), "scale (argument 1) must be a number");
    op->scale = info[1].As<Napi::Number>().FloatValue();
  }
  return Enqueue(info, std::move(op), {0});
}

Napi::Value ReduceScatter(const Napi::CallbackInfo& info) {
  const char* fname = "reduceScatter";
  check_running(info, fname);
  auto op = std::make_unique<Op>();
  op->kind = Kind::ReduceScatter;
  int64_t m = 0;
  op->src = floats(info, fname, 0, &op->n);
  op->dst = floats(info, fname, 1, &m);
  CHECK(op->n <= kMaxCount, "at most 2^31-1 elements per call");
  CHECK(op->n % comm.size == 0, "src has " + std::to_string(op->n) + " elements, not a multiple of the world size " +
                                    std::to_string(comm.size));
  CHECK(m == op->n / comm.size, "dst has " + std::to_string(m) + " elements, expected src/size = " +
                                    std::to_string(op->n / comm.size));
  if (info.Length() > 2 && !info[2].IsUndefined()) {
    CHECK(info[2].IsNumber(), "scale (argument 2) must be a number");
    op->scale = info[2].As<Napi::Number>().FloatValue();
  }
  return Enqueue(info, std::move(op), {0, 1});
}

Napi::Value AllGather(const Napi::CallbackInfo& info) {
  const char* fname = "allgather";
  check_running(info, fname);
  auto op = std::make_unique<Op>();
  op->kind = Kind::AllGather;
  int64_t m = 0;
  op->src = floats(info, fname, 0, &op->n);
  op->dst = floats(info, fname, 1, &m);
  CHECK(op->n * comm.size <= kMaxCount, "at most 2^31-1 gathered elements per call");
  CHECK(m == op->n * comm.size, "dst has " + std::to_string(m) + " elements, expected src*size = " +
                                    std::to_string(op->n * comm.size));
  return Enqueue(info, std::move(op), {0, 1});
}

Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  const char* fname = "broadcast";
  check_running(info, fname);
  auto op = std::make_unique<Op>();
  op->kind = Kind::Broadcast;
  op->src = floats(info, fname, 0, &op->n);
  CHECK(op->n <= kMaxCount, "at most 2^31-1 elements per call");
  CHECK(info.Length() > 1 && info[1].IsNumber(), "root (argument 1) must be a number");
  op->root = info[1].As<Napi::Number>().Int32Value();
  CHECK(op->root >= 0 && op->root < comm.size, "root " + std::to_string(op->root) + " is not a rank of a world of " +
                                                   std::to_string(comm.size));
  return Enqueue(info, std::move(op), {0});
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  const char* fname = "barrier";
  check_running(info, fname);
  auto op = std::make_unique<Op>();
  op->kind = Kind::Barrier;
  return Enqueue(info, std::move(op), {});
}

// Result of a finished op: [start, end] on the steady clock (seconds); throws its MPI error.
Napi::Value Collect(const Napi::CallbackInfo& info, const char* fname, std::unique_lock<std::mutex>& lock, int64_t id) {
  auto it = comm.ops.find(id);
  std::unique_ptr<Op> op = std::move(it->second);
  comm.ops.erase(it);
  lock.unlock();
  if (!op->error.empty()) throw Napi::Error::New(info.Env(), op->error);
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, op->start);
  out.Set(1u, op->end);
  return out;  // op (and its references) released here, on the JS thread
}

int64_t op_id(const Napi::CallbackInfo& info, const char* fname) {
  CHECK(info.Length() > 0 && info[0].IsNumber(), "id (argument 0) must be a number");
  const int64_t id = info[0].As<Napi::Number>().Int64Value();
  CHECK(comm.ops.count(id) == 1, "no pending operation " + std::to_string(id) + " (already collected?)");
  return id;
}

// test(id): null while running, else [start, end] (and the op is collected).
Napi::Value Test(const Napi::CallbackInfo& info) {
  const char* fname = "test";
  std::unique_lock<std::mutex> lock(comm.mu);
  const int64_t id = op_id(info, fname);
  if (!comm.ops[id]->done) return info.Env().Null();
  return Collect(info, fname, lock, id);
}

// wait(id, timeoutMs): blocks up to timeoutMs; null when still running, else as test.
Napi::Value Wait(const Napi::CallbackInfo& info) {
  const char* fname = "wait";
  std::unique_lock<std::mutex> lock(comm.mu);
  const int64_t id = op_id(info, fname);
  CHECK(info.Length() > 1 && info[1].IsNumber(), "timeoutMs (argument 1) must be a number");
  const double ms = info[1].As<Napi::Number>().DoubleValue();
  CHECK(ms >= 0, "timeoutMs must be >= 0");
  Op* op = comm.ops[id].get();
  if (!comm.cv.wait_for(lock, std::chrono::duration<double, std::milli>(ms), [op] { return op->done; }))
    return info.Env().Null();
  return Collect(info, fname, lock, id);
}

Napi::Value Now(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), now_seconds()); }

// Ends the job on every rank (mpirun kills the others). A watchdog exits this process in case
// MPI_Abort itself blocks on a dead peer.
Napi::Value Abort(const Napi::CallbackInfo& info) {
  const char* fname = "abort";
  const int code = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1;
  CHECK(code != 0, "the exit code must not be 0");
  std::thread([code] {
    std::this_thread::sleep_for(std::chrono::seconds(10));
    _exit(code);
  }).detach();
  fflush(stdout);
  fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  _exit(code);
}

// Waits for queued work, then MPI_Finalize on the communication thread; idempotent.
Napi::Value Finalize(const Napi::CallbackInfo& info) {
  {
    std::lock_guard<std::mutex> lock(comm.mu);
    if (!comm.started || comm.finalized) return info.Env().Undefined();
    comm.finalized = true;
    if (!comm.init_error.empty()) {
      comm.thread.join();
      return info.Env().Undefined();
    }
  }
  auto op = std::make_unique<Op>();
  op->kind = Kind::Finalize;
  Op* raw = op.get();
  {
    std::lock_guard<std::mutex> lock(comm.mu);
    op->id = comm.next_id++;
    comm.queue.push_back(raw);
    comm.ops.emplace(op->id, std::move(op));
  }
  comm.cv.notify_all();
  comm.thread.join();
  return info.Env().Undefined();
}

Napi::Object Module(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("allreduce", Napi::Function::New(env, AllReduce));
  exports.Set("reduceScatter", Napi::Function::New(env, ReduceScatter));
  exports.Set("allgather", Napi::Function::New(env, AllGather));
  exports.Set("broadcast", Napi::Function::New(env, Broadcast));
  exports.Set("barrier", Napi::Function::New(env, Barrier));
  exports.Set("test", Napi::Function::New(env, Test));
  exports.Set("wait", Napi::Function::New(env, Wait));
  exports.Set("now", Napi::Function::New(env, Now));
  exports.Set("abort", Napi::Function::New(env, Abort));
  exports.Set("finalize", Napi::Function::New(env, Finalize));
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(version, &len);
  exports.Set("library", Napi::String::New(env, std::string(version, len)));
  return exports;
}

}  // namespace

NODE_API_MODULE(plinth_mpi, Module)
