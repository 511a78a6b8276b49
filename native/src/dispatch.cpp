// Runtime CPU dispatch: picks the widest kernel table this CPU runs.
// PLINTH_ISA=avx2|portable forces a lower path (a higher one than the CPU has is refused).
#include <cstdlib>
#include <cstring>

#include "kernels.h"

namespace plinth {
namespace {

const KernelTable* lookup(const char* name) {
  if (std::strcmp(name, "avx512") == 0) return &table_avx512();
  if (std::strcmp(name, "avx2") == 0) return &table_avx2();
  if (std::strcmp(name, "portable") == 0) return &table_portable();
  return nullptr;
}

const KernelTable* best() {
  __builtin_cpu_init();
  if (isa_supported("avx512")) return &table_avx512();
  if (isa_supported("avx2")) return &table_avx2();
  return &table_portable();
}

const KernelTable*& active() {
  static const KernelTable* t = [] {
    const char* env = std::getenv("PLINTH_ISA");
    if (env != nullptr && *env != '\0' && isa_supported(env)) return lookup(env);
    return best();
  }();
  return t;
}

}  // namespace

bool isa_supported(const char* name) {
  __builtin_cpu_init();
  if (std::strcmp(name, "avx512") == 0)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("fma");
  if (std::strcmp(name, "avx2") == 0) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return std::strcmp(name, "portable") == 0;
}

bool set_isa(const char* name) {
  if (lookup(name) == nullptr || !isa_supported(name)) return false;
  active() = lookup(name);
  return true;
}

const KernelTable& kernels() { return *active(); }

}  // namespace plinth
