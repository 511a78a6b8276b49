// Builds the optional CUDA backend (native/cuda -> native/cuda/build/libplinth_cuda.so, the C-ABI
// kernels, and native/cuda/build/Release/plinth_cuda.node, the Node addon over them). Run by
// `npm install` after the CPU addon; opt-in, because nvcc takes several minutes for sm_80 + sm_90
// on two cores: PLINTH_CUDA=1 npm install, or npm run build:cuda (which implies it). Without nvcc,
// without the opt-in, or when the build fails, it says so in one line and exits 0: the CPU
// backend is unaffected, and `--device cuda` then explains what is missing.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const forced = process.argv.includes("--force");
const say = (line) => console.log(`plinth: ${line}`);

const cudaHome = process.env.CUDA_HOME ?? process.env.CUDA_PATH;
const fromHome = cudaHome !== undefined ? join(cudaHome, "bin", "nvcc") : null;
const which = spawnSync("sh", ["-c", "command -v nvcc"], { encoding: "utf8" });
const nvcc = fromHome !== null && existsSync(fromHome) ? fromHome : which.status === 0 ? which.stdout.trim() : null;
if (nvcc === null) {
  say("nvcc not found (no CUDA_HOME, no nvcc on PATH): skipping the optional CUDA backend");
  process.exit(0);
}
if (!forced && process.env.PLINTH_CUDA !== "1") {
  say(`nvcc found (${nvcc}), but the CUDA backend is opt-in (its build takes minutes): PLINTH_CUDA=1 npm install, or npm run build:cuda`);
  process.exit(0);
}
const out = join(root, "native", "cuda", "build");
const t0 = Date.now();
const lib = spawnSync("bash", [join(root, "native", "cuda", "build-lib.sh"), out], {
  stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, NVCC: nvcc },
});
if (lib.error !== undefined || lib.status !== 0) {
  say(`building the CUDA kernels with ${nvcc} failed (${lib.error?.message ?? `exit ${lib.status}`}); the CUDA backend stays off (the CPU path is unaffected)`);
  process.exit(0);
}
// The addon is host C++ over the C ABI: Node's headers (installed beside it, or node-gyp's cache) and node-addon-api.
const require = createRequire(import.meta.url);
const prefix = join(dirname(process.execPath), "..");
const headers = [join(prefix, "include", "node"), process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, "include", "node")]
  .find((d) => d && existsSync(join(d, "node_api.h")));
if (headers === undefined) {
  say("Node's headers (node_api.h) were not found beside node: built libplinth_cuda.so only, not the Node addon");
  process.exit(0);
}
mkdirSync(join(out, "Release"), { recursive: true });
const cxx = process.env.CXX ?? "c++";
const addon = spawnSync(cxx, ["-std=c++17", "-O2", "-fPIC", "-shared", "-fvisibility=hidden", "-DNAPI_VERSION=8", "-DNAPI_CPP_EXCEPTIONS",
  `-I${headers}`, `-I${require("node-addon-api").include_dir}`, `-I${join(root, "native", "cuda", "src")}`,
  join(root, "native", "cuda", "src", "addon.cpp"), "-o", join(out, "Release", "plinth_cuda.node"),
  `-L${out}`, "-lplinth_cuda", "-Wl,-rpath,$ORIGIN/.."], { stdio: ["ignore", "inherit", "inherit"] });
if (addon.error !== undefined || addon.status !== 0) {
  say(`building the CUDA Node addon failed (${addon.error?.message ?? `exit ${addon.status}`}); the CUDA backend stays off`);
  process.exit(0);
}
say(`built the CUDA backend in ${Math.round((Date.now() - t0) / 1000)} s: native/cuda/build/libplinth_cuda.so and Release/plinth_cuda.node (use --device cuda on a machine with an NVIDIA GPU)`);
