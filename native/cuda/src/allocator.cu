// Caching device allocator: one free list per size class and device, one stream per device.
//
// Size classes are those of the CPU allocator (64-byte steps up to 64 KiB, then 8 steps per
// power of two), so a training step's tensors find their blocks again after the first step:
// no cudaMalloc in steady state (deviceMallocs stays flat; see plinth_cuda_memory_stats).
// Because every kernel runs on the device's one stream, a block freed on the host may be
// handed out at once: work that used it was enqueued before any work that reuses it.
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common.cuh"
#include "plinth_cuda.h"

namespace plinth_cuda {

namespace {
thread_local std::string last_error;

struct DeviceState {
  cudaStream_t stream = nullptr;
  bool has_stream = false;  // stream may be the legacy default stream (nullptr) once set
  std::unordered_map<size_t, std::vector<void*>> free_lists;
  std::unordered_map<void*, size_t> live;  // pointer -> size class
  int64_t in_use = 0, cached = 0, peak = 0, mallocs = 0;
};
constexpr int kMaxDevices = 64;
DeviceState states[kMaxDevices];
std::mutex mu;

int current_device() {
  int d = 0;
  cudaGetDevice(&d);
  return d;
}

size_t size_class(size_t bytes) {
  size_t b = bytes < 1 ? 1 : bytes;
  if (b <= 65536) return (b + 63) / 64 * 64;
  int log2 = 63 - __builtin_clzll(b);
  size_t step = size_t(1) << (log2 - 3);
  return (b + step - 1) / step * step;
}
}  // namespace

bool ok(cudaError_t e, const char* what, const char* file, int line) {
  if (e == cudaSuccess) return true;
  last_error = std::string(what) + ": " + cudaGetErrorString(e) + " (" + file + ":" + std::to_string(line) + ")";
  return false;
}

bool fail(const char* msg, const char* file, int line) {
  last_error = std::string(msg) + " (" + file + ":" + std::to_string(line) + ")";
  return false;
}

cudaStream_t stream() {
  DeviceState& s = states[current_device() % kMaxDevices];
  if (!s.has_stream) {
    cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking);
    s.has_stream = true;
  }
  return s.stream;
}

}  // namespace plinth_cuda

using namespace plinth_cuda;

extern "C" {

const char* plinth_cuda_last_error(void) { return last_error.c_str(); }

int plinth_cuda_device_count(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

int plinth_cuda_set_device(int device) { return PC_CHECK(cudaSetDevice(device)) ? 0 : 1; }

int plinth_cuda_device_info(int device, char* name, int name_len, int64_t* info) {
  cudaDeviceProp p;
  if (!PC_CHECK(cudaGetDeviceProperties(&p, device))) return 1;
  if (name != nullptr && name_len > 0) {
    std::strncpy(name, p.name, static_cast<size_t>(name_len - 1));
    name[name_len - 1] = 0;
  }
  size_t free_b = 0, total_b = 0;
  int prev = 0;
  cudaGetDevice(&prev);
  cudaSetDevice(device);
  cudaMemGetInfo(&free_b, &total_b);
  cudaSetDevice(prev);
  info[0] = static_cast<int64_t>(total_b);
  info[1] = static_cast<int64_t>(free_b);
  info[2] = p.major;
  info[3] = p.minor;
  info[4] = p.multiProcessorCount;
  return 0;
}

void* plinth_cuda_alloc(int64_t bytes) {
  std::lock_guard<std::mutex> lock(mu);
  const int dev = current_device();
  DeviceState& s = states[dev % kMaxDevices];
  const size_t c = size_class(static_cast<size_t>(bytes));
  auto& list = s.free_lists[c];
  void* p = nullptr;
  if (!list.empty()) {
    p = list.back();
    list.pop_back();
    s.cached -= static_cast<int64_t>(c);
  } else {
    cudaError_t e = cudaMalloc(&p, c);
    if (e != cudaSuccess) {
      cudaGetLastError();
      // Return every cached block to the driver and try once more.
      for (auto& kv : s.free_lists)
        for (void* q : kv.second) cudaFree(q);
      s.free_lists.clear();
      s.cached = 0;
      e = cudaMalloc(&p, c);
    }
    if (!ok(e, "cudaMalloc", __FILE__, __LINE__)) return nullptr;
    s.mallocs++;
  }
  s.live[p] = c;
  s.in_use += static_cast<int64_t>(c);
  if (s.in_use > s.peak) s.peak = s.in_use;
  return p;
}

int plinth_cuda_free(void* p) {
  if (p == nullptr) return 0;
  std::lock_guard<std::mutex> lock(mu);
  for (DeviceState& s : states) {
    auto it = s.live.find(p);
    if (it == s.live.end()) continue;
    const size_t c = it->second;
    s.live.erase(it);
    s.in_use -= static_cast<int64_t>(c);
    s.free_lists[c].push_back(p);
    s.cached += static_cast<int64_t>(c);
    return 0;
  }
  return fail("plinth_cuda_free: pointer was not allocated here (or freed twice)", __FILE__, __LINE__) ? 0 : 1;
}

int plinth_cuda_empty_cache(void) {
  std::lock_guard<std::mutex> lock(mu);
  DeviceState& s = states[current_device() % kMaxDevices];
  cudaStreamSynchronize(stream());
  for (auto& kv : s.free_lists)
    for (void* q : kv.second) cudaFree(q);
  s.free_lists.clear();
  s.cached = 0;
  return 0;
}

int plinth_cuda_memory_stats(int64_t* out) {
  std::lock_guard<std::mutex> lock(mu);
  const DeviceState& s = states[current_device() % kMaxDevices];
  out[0] = s.in_use;
  out[1] = s.cached;
  out[2] = s.peak;
  out[3] = s.mallocs;
  return 0;
}

int plinth_cuda_set_stream(void* stream) {
  std::lock_guard<std::mutex> lock(mu);
  DeviceState& s = states[current_device() % kMaxDevices];
  // Blocks cached so far were last used on the old stream: let it drain before they move.
  if (s.has_stream && !PC_CHECK(cudaStreamSynchronize(s.stream))) return 1;
  s.stream = static_cast<cudaStream_t>(stream);
  s.has_stream = true;
  return 0;
}

int plinth_cuda_synchronize(void) { return PC_CHECK(cudaStreamSynchronize(stream())) ? 0 : 1; }

int plinth_cuda_upload(void* dst, const void* src, int64_t bytes) {
  if (bytes <= 0) return 0;
  if (!PC_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyHostToDevice, stream()))) return 1;
  return PC_CHECK(cudaStreamSynchronize(stream())) ? 0 : 1;
}

int plinth_cuda_download(void* dst, const void* src, int64_t bytes) {
  if (bytes <= 0) return 0;
  if (!PC_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyDeviceToHost, stream()))) return 1;
  return PC_CHECK(cudaStreamSynchronize(stream())) ? 0 : 1;
}

int plinth_cuda_copy(void* dst, const void* src, int64_t bytes) {
  if (bytes <= 0) return 0;
  return PC_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyDeviceToDevice, stream())) ? 0 : 1;
}

}  // extern "C"
