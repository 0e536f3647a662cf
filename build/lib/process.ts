import { readFileSync } from 'node:fs';
/** Whether a process is still running: how a temp dir, lock or staging dir tells a live owner from a dead one. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie still answers kill(0): one whose parent exited waits for PID 1 to reap it, and some
    // sandboxes' PID 1 never does. It runs nothing and holds nothing, so it is not alive.
    return !isZombie(pid);
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * SIGTERM, up to `graceMs` for the process to go, then SIGKILL. Resolves false when it was not running.
 * A process that ends between the checks is not an error.
 */
export async function terminate(pid: number, graceMs: number): Promise<boolean> {
  if (!pidAlive(pid)) return false;
  const signal = (s: NodeJS.Signals) => {
    try {
      process.kill(pid, s);
    } catch {
      // gone meanwhile
    }
  };
  signal('SIGTERM');
  for (const until = Date.now() + graceMs; Date.now() < until && pidAlive(pid); ) await new Promise((r) => setTimeout(r, 100));
  if (pidAlive(pid)) signal('SIGKILL');
  return true;
}

function isZombie(pid: number): boolean {
  try {
    // /proc/<pid>/stat: "pid (comm) S …"; comm may hold spaces and parentheses, the state follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return false;
  }
}
