// Where the browser tests find Chromium, and what they do without one: on a developer's
// machine a missing browser skips them with one line saying what to install; where
// PLINTH_REQUIRE_BROWSER=1 (.ci/run sets it) a missing browser is a failure.
import { existsSync } from "node:fs";

/** Chromium's paths on Debian and Ubuntu; PLINTH_CHROMIUM names another one. */
export const CHROMIUM_PATHS = ["/usr/bin/chromium", "/usr/bin/chromium-browser"];
export const INSTALL_HINT = "apt-get install chromium";

export type BrowserDecision =
  | { action: "run"; executablePath: string }
  | { action: "skip"; message: string }
  | { action: "fail"; message: string };

export interface BrowserEnv {
  env?: Record<string, string | undefined>;
  exists?: (path: string) => boolean;
}

/** Decides whether a browser test runs, skips (browser optional and absent) or fails (required and absent). */
export function findChromium({ env = process.env, exists = existsSync }: BrowserEnv = {}): BrowserDecision {
  const candidates = env.PLINTH_CHROMIUM ? [env.PLINTH_CHROMIUM] : CHROMIUM_PATHS;
  const found = candidates.find((p) => exists(p));
  if (found !== undefined) return { action: "run", executablePath: found };
  const where = candidates.join(" or ");
  if (env.PLINTH_REQUIRE_BROWSER === "1") {
    return { action: "fail", message: `Chromium is required (PLINTH_REQUIRE_BROWSER=1) but not found at ${where}: ${INSTALL_HINT}` };
  }
  return { action: "skip", message: `dashboard browser test skipped: no Chromium at ${where}; to run it: ${INSTALL_HINT}` };
}
