#!/usr/bin/env bash
# Builds the CUDA kernels into native/cuda/build/: one object per .cu file (in parallel) and
# libplinth_cuda.so, the C-ABI library (plinth_cuda.h) that Python's ctypes and the Node addon use.
#   PLINTH_CUDA_ARCHS   space-separated SM versions (default "80 90"): SASS for each, PTX for the last
#   NVCC                the compiler (default: nvcc on PATH, else $CUDA_HOME/bin/nvcc)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/build}"
mkdir -p "$out/obj"
nvcc="${NVCC:-$(command -v nvcc || echo "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc")}"
archs="${PLINTH_CUDA_ARCHS:-80 90}"
gencode=()
last=""
for a in $archs; do gencode+=("-gencode" "arch=compute_$a,code=sm_$a"); last="$a"; done
gencode+=("-gencode" "arch=compute_$last,code=compute_$last")
flags=(-std=c++17 -O3 -Xcompiler -fPIC -Xcompiler -fvisibility=hidden "${gencode[@]}")
jobs="$(nproc 2>/dev/null || echo 2)"
printf '%s\n' "$here"/src/*.cu | xargs -P "$jobs" -I{} sh -c '
  f="$1"; shift; o="$0/obj/$(basename "$f" .cu).o"
  "$@" -c "$f" -o "$o" || { echo "plinth: nvcc failed on $f" >&2; exit 255; }' "$out" {} "$nvcc" "${flags[@]}"
"$nvcc" -shared "${gencode[@]}" -o "$out/libplinth_cuda.so" "$out"/obj/*.o -ldl
echo "$out/libplinth_cuda.so"
