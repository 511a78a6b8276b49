#include "allocator.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <sys/mman.h>
#include <unordered_map>
#include <vector>

namespace plinth {
namespace {

std::unordered_map<size_t, std::vector<void*>>& free_lists() {
  static auto* lists = new std::unordered_map<size_t, std::vector<void*>>();
  return *lists;
}

AllocatorStats stats{};

// Size classes: multiples of 64 bytes below 64 KiB; above, eight classes per power of two
// (at most 12.5% slack). Tensors whose size varies a little from step to step (a batch
// with a varying number of masked targets) then share classes instead of each new size
// pinning a fresh block in the cache.
size_t round_size(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes <= (1u << 16)) return (bytes + 63) / 64 * 64;
  int top = 63 - __builtin_clzll(static_cast<unsigned long long>(bytes));
  const size_t step = size_t(1) << (top - 3);
  return (bytes + step - 1) / step * step;
}

}  // namespace

void* system_alloc(size_t bytes) {
  constexpr size_t kHuge = size_t(2) << 20;
  if (bytes < kHuge) return std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  void* ptr = std::aligned_alloc(kHuge, (bytes + 63) / 64 * 64);
#ifdef MADV_HUGEPAGE
  // A hint: where transparent huge pages are off, the block works the same with 4 KiB pages.
  if (ptr != nullptr) (void)madvise(ptr, bytes, MADV_HUGEPAGE);
#endif
  return ptr;
}

void* cache_alloc(size_t bytes, size_t* rounded) {
  const size_t size = round_size(bytes);
  *rounded = size;
  auto& list = free_lists()[size];
  void* ptr;
  if (!list.empty()) {
    ptr = list.back();
    list.pop_back();
    stats.bytes_cached -= size;
    stats.reuses++;
  } else {
    ptr = system_alloc(size);
    if (ptr == nullptr) {
      cache_empty();
      ptr = system_alloc(size);
      if (ptr == nullptr) throw std::bad_alloc();
    }
    stats.fresh_allocations++;
    stats.fresh_bytes += size;
  }
  stats.bytes_in_use += size;
  if (stats.bytes_in_use > stats.peak_bytes_in_use) stats.peak_bytes_in_use = stats.bytes_in_use;
  return ptr;
}

void cache_free(void* ptr, size_t rounded) {
  free_lists()[rounded].push_back(ptr);
  stats.bytes_in_use -= rounded;
  stats.bytes_cached += rounded;
}

void cache_empty() {
  for (auto& [size, list] : free_lists()) {
    for (void* p : list) std::free(p);
    stats.bytes_cached -= size * list.size();
    list.clear();
  }
}

AllocatorStats cache_stats() { return stats; }

}  // namespace plinth
