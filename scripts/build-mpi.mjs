// Builds the optional MPI binding (native/mpi -> native/mpi/build/Release/plinth_mpi.node) when
// Open MPI's compiler wrapper is installed; run by `npm install` after the main addon. Without
// mpicxx, or when the build fails, it says so in one line and exits 0: MPI only serves
// data-parallel training (`plinth pretrain --procs N`), and everything else works without it.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const INSTALL = "apt-get install -y libopenmpi-dev openmpi-bin, then npm run build:mpi";

if (process.env.PLINTH_SKIP_MPI === "1") {
  console.log("plinth: PLINTH_SKIP_MPI=1: skipping the optional MPI addon (data-parallel training)");
  process.exit(0);
}
const probe = spawnSync("mpicxx", ["--showme:version"], { encoding: "utf8" });
if (probe.error !== undefined || probe.status !== 0) {
  console.log(`plinth: mpicxx not found: skipping the optional MPI addon for data-parallel training (to enable it: ${INSTALL})`);
  process.exit(0);
}
// npm passes its bundled node-gyp in npm_config_node_gyp; by hand, use the one on PATH or npm's.
const bundled = [process.env.npm_config_node_gyp, join(dirname(process.execPath), "..", "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js")]
  .find((p) => p !== undefined && existsSync(p));
// Node's own headers when they are installed beside it (Debian's nodejs), so node-gyp need not download them.
const prefix = join(dirname(process.execPath), "..");
const nodedir = process.env.npm_config_nodedir === undefined && existsSync(join(prefix, "include", "node", "node_api.h")) ? [`--nodedir=${prefix}`] : [];
const [cmd, args] = bundled !== undefined ? [process.execPath, [bundled, "rebuild", ...nodedir]] : ["node-gyp", ["rebuild", ...nodedir]];
const r = spawnSync(cmd, args, { cwd: join(root, "native", "mpi"), stdio: ["ignore", "inherit", "inherit"] });
if (r.error !== undefined || r.status !== 0) {
  console.log(`plinth: building the optional MPI addon failed (${r.error?.message ?? `exit ${r.status}`}); data-parallel training stays off (everything else works)`);
  process.exit(0);
}
console.log("plinth: built the MPI addon native/mpi/build/Release/plinth_mpi.node (data-parallel training)");
