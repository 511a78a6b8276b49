/**
 * Whether a process on this machine still runs: signal 0 reaches it and it is not a zombie (a
 * process killed but not yet reaped by its new parent: in a container whose init does not reap,
 * a replica killed with -9 stays one). Used to tell a dead server's reservations and a dead
 * worker's job from live ones.
 *
 *     processAlive(pid)                      // a process of another user (EPERM) counts as alive
 *     processAlive(pid, { othersDead: true }) // our own children only: EPERM means the pid was reused
 */
import { readFileSync } from "node:fs";

export function processAlive(pid: number, { othersDead = false }: { othersDead?: boolean } = {}): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if (othersDead || (e as { code?: string }).code !== "EPERM") return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return true;  // no /proc (not Linux): signal 0 succeeded, so it exists
  }
}
