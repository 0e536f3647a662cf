/**
 * Temporary directories of a running build, so an interrupt (Ctrl-C, SIGTERM) removes them instead of
 * leaving gigabytes of chroot behind. Stages register what they create and unregister it once it is
 * renamed into place or removed; the build command installs the signal handler for the build's duration.
 * The handler runs synchronously: after a signal nothing else of the build may run.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pidAlive } from './process.ts';

const temps = new Set<string>();
let activity = 'starting';
const beside = new Set<string>();

/** What the build is doing now, for the interrupt message. */
export function setActivity(name: string): void {
  activity = name;
}

/** A job running beside the current step (e.g. the installer environment); the returned function ends it. */
export function addActivity(name: string): () => void {
  beside.add(name);
  return () => void beside.delete(name);
}

/** Everything running now: `"pack image" and "installer environment"`. */
export function currentActivities(): string {
  return [...new Set([activity, ...beside])].map((a) => `"${a}"`).join(' and ');
}

/** Registers a temp dir; the returned function unregisters it (call it once the dir is gone or published). */
export function registerTemp(path: string): () => void {
  temps.add(path);
  return () => void temps.delete(path);
}

export function registeredTemps(): string[] {
  return [...temps];
}

function removeSync(path: string): void {
  // --one-file-system: a chroot interrupted mid-bootstrap may still have /proc or /dev mounted inside.
  spawnSync('rm', ['--recursive', '--force', '--one-file-system', '--', path], { stdio: 'ignore' });
}

export interface InterruptInfo {
  signal: NodeJS.Signals;
  activity: string;
  removed: string[];
}

/**
 * On SIGINT/SIGTERM: remove every registered dir, let `report` say what was interrupted, exit 130/143.
 * Returns the function that uninstalls the handlers.
 */
export function onInterrupt(report: (info: InterruptInfo) => void): () => void {
  const handler = (signal: NodeJS.Signals) => {
    const removed = [...temps];
    // Our own children (mmdebstrap, zstd, tar) would go on writing into the dirs being removed.
    spawnSync('pkill', ['--signal', 'TERM', '--parent', String(process.pid)], { stdio: 'ignore' });
    for (const p of removed) removeSync(p);
    temps.clear();
    report({ signal, activity: currentActivities(), removed });
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}


/** Removes `<dir>/<name>-<pid>` entries whose process is gone: what an earlier killed build left. */
export function sweepDeadPidDirs(dir: string, onRemove?: (path: string) => void): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const n of names) {
    const pid = Number(/-(\d+)$/.exec(n)?.[1]);
    if (!pid || pid === process.pid || pidAlive(pid)) continue;
    onRemove?.(join(dir, n));
    removeSync(join(dir, n));
    removed.push(join(dir, n));
  }
  return removed;
}
