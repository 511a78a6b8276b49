#!/usr/bin/env bash
# The GPU check of the CUDA backend, for a machine with nvcc, Python, PyTorch and an NVIDIA GPU
# (no Node.js, no network), in under 10 minutes:
#   1. builds native/cuda into native/cuda/build/libplinth_cuda.so with nvcc, for this GPU's
#      compute capability only (PLINTH_CUDA_ARCHS overrides), in parallel
#   2. finds libcublasLt (PyTorch's wheels ship it) for the cuBLASLt GEMM path (PLINTH_CUBLASLT
#      overrides; without it the own kernels run and the GEMM speed line shows no cuBLASLt column)
#   3. runs scripts/cuda_check.py: every kernel forward and backward against PyTorch (fp32 to 1e-4,
#      bf16 GEMM to 1e-3 relative), tiny-GPT parity, 200 bf16-GEMM training steps tracking fp32
#      within 1%, bf16 GEMM TFLOP/s beside torch.matmul, and a
#      GPT-2 124M training step beside PyTorch eager and torch.compile
# Extra arguments go to cuda_check.py (--quick, --no-speed). Exit status: 0 when every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
py="${PYTHON:-python3}"
if ! "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "device-check: needs Python with PyTorch and a CUDA GPU ($py)" >&2
  exit 2
fi
nvcc="${NVCC:-$(command -v nvcc || echo "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc")}"
if [ ! -x "$nvcc" ]; then
  echo "device-check: nvcc not found (set NVCC or CUDA_HOME)" >&2
  exit 2
fi
export NVCC="$nvcc"
export PLINTH_CUDA_ARCHS="${PLINTH_CUDA_ARCHS:-$("$py" -c 'import torch; m, n = torch.cuda.get_device_capability(); print(f"{m}{n}")')}"
if [ -z "${PLINTH_CUBLASLT:-}" ]; then
  PLINTH_CUBLASLT="$("$py" - <<'PY'
import glob, os, site, torch
dirs = [os.path.join(os.path.dirname(torch.__file__), "lib")]
dirs += [os.path.join(p, "nvidia", name, "lib") for p in site.getsitepackages() for name in ("cublas", "cu13", "cu12")]
dirs += [os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "lib64")]
found = [f for d in dirs for f in sorted(glob.glob(os.path.join(d, "libcublasLt.so*")))]
print(found[0] if found else "")
PY
)"
  export PLINTH_CUBLASLT
fi
echo "== device-check: $("$py" -c 'import torch; print(torch.cuda.get_device_name())'), sm_${PLINTH_CUDA_ARCHS}, $("$nvcc" --version | tail -1)"
echo "== cuBLASLt: ${PLINTH_CUBLASLT:-not found (own kernels only)}"
echo "== build (nvcc)"
t0=$(date +%s)
timeout 240 native/cuda/build-lib.sh native/cuda/build
echo "== built in $(( $(date +%s) - t0 )) s"
echo "== kernels, GPT parity and speed against PyTorch"
set +e
timeout 420 "$py" scripts/cuda_check.py --lib native/cuda/build/libplinth_cuda.so --compile "$@"
rc=$?
set -e
echo "== device-check: exit $rc after $(( $(date +%s) - start )) s"
exit $rc
