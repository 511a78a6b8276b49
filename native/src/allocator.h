// Caching allocator for tensor storage.
//
// Fresh pages cost a page fault each (a new 40 MB buffer is ~100 ms of faults on
// these machines), so freed blocks go back to a per-size free list and are handed
// out again; training reaches a steady state where no step allocates fresh memory.
// Blocks are 64-byte aligned for vector loads; sizes are rounded up to size classes
// (64-byte steps below 64 KiB, then eight classes per power of two) so that
// near-equal sizes share a list.
#pragma once
#include <cstddef>
#include <cstdint>

namespace plinth {

struct AllocatorStats {
  uint64_t bytes_in_use;
  uint64_t bytes_cached;
  uint64_t peak_bytes_in_use;
  uint64_t fresh_allocations;  // blocks obtained from the system
  uint64_t fresh_bytes;
  uint64_t reuses;             // blocks served from the cache
};

// Memory straight from the system, 64-byte aligned; blocks of 2 MiB and more are 2 MiB
// aligned and marked for transparent huge pages (kernels that walk a large matrix across
// rows touch one 4 KiB page per row: with 2 MiB pages the TLB covers the whole operand).
// nullptr when the system has none left. Free with std::free.
void* system_alloc(size_t bytes);
void* cache_alloc(size_t bytes, size_t* rounded);
void cache_free(void* ptr, size_t rounded);
void cache_empty();  // returns every cached block to the system
AllocatorStats cache_stats();

}  // namespace plinth
