/**
 * The lifecycle state file: one JSON document, per node {phase, state, since, updated, history, detail}.
 *
 * Writers are the watcher (reports, timeouts) and `reimage` (marks nodes requested), i.e. more than one
 * process, so a single-writer queue inside the watcher is not enough: every update is read-modify-write
 * under an O_EXCL lock file (`<state>.lock`, holding the owner's pid). Node has no flock(); O_EXCL create
 * is atomic on local filesystems and needs no native code. A lock whose owner is dead (kill -9) is taken
 * over by renaming it aside first, so two takers cannot both win. Within the watcher, updates also run
 * one at a time (the caller's queue), which keeps the lock uncontended.
 *
 * The file itself is written as temp file + fsync + rename + fsync of the directory: after a crash at
 * any instant the file is the old document or the new one, never a mix.
 */
import { closeSync, constants, fsyncSync, openSync, writeSync } from 'node:fs';
import { access, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { StageError } from '../lib/errors.ts';
import { pidAlive } from '../lib/process.ts';
import { atomicWrite } from '../lib/atomic.ts';

export type NodeStatus = 'requested' | 'installing' | 'done' | 'failed' | 'timed-out';

export interface HistoryEntry {
  at: string;
  phase: string;
  state: NodeStatus;
}

export interface NodeState {
  name: string;
  mac: string;
  /** Last phase reported (or `requested`, `timeout`). */
  phase: string;
  state: NodeStatus;
  /** When the node entered its current state. */
  since: string;
  /** Last report or change. */
  updated: string;
  history: HistoryEntry[];
  detail?: string;
  /** The last full installer log received, if any. */
  log?: string;
  /** The install run the node is in (an id handed out at switch time; never the run's nonce). */
  run?: string;
  /** Boots into the installer for this run (1 = the first; the watcher's retries add more). */
  tries?: number;
  /** When the current phase began, and when it is overdue (phase deadlines). */
  phaseStarted?: string;
  deadline?: string;
  /** The image download as the node last reported it. */
  progress?: { bytes: number; total: number; rateBps: number; at: string };
  /** Why a node was parked (powered off or linked to rescue) after its retries ran out. */
  parked?: string;
  /** The last few finished runs: result and seconds per phase, newest last. */
  runs?: { run: string; result: NodeStatus; at: string; phases: Record<string, number>; detail?: string }[];
}

export interface StateDoc {
  version: 1;
  nodes: Record<string, NodeState>;
}

export const HISTORY_TAIL = 20;
export const FINISHED: ReadonlySet<NodeStatus> = new Set(['done', 'failed', 'timed-out']);

export const emptyState = (): StateDoc => ({ version: 1, nodes: {} });

/**
 * The state belongs to one served tree: the spec's servedRoot (node0's /srv/public) keeps
 * /var/lib/portacluster/state.json (or $PORTACLUSTER_STATE); any other --root gets its own file under
 * `<that dir>/trees/<root with / as _>/state.json`, so `status --root dist` never shows node0's nodes.
 * --state still names any file explicitly.
 */
export function defaultStateFile(root?: string, servedRoot?: string): string {
  const main = process.env.PORTACLUSTER_STATE || '/var/lib/portacluster/state.json';
  if (root === undefined || (servedRoot !== undefined && resolve(root) === resolve(servedRoot))) return main;
  return join(dirname(main), 'trees', resolve(root).replace(/\//g, '_'), 'state.json');
}

export async function readState(file: string): Promise<StateDoc> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
    throw e;
  }
  try {
    const doc = JSON.parse(text) as StateDoc;
    if (doc.version !== 1 || typeof doc.nodes !== 'object') throw new Error('not a portacluster state document');
    return doc;
  } catch (e) {
    throw new StageError('state', `${file}: ${(e as Error).message}\n  hint: move it aside; the next report recreates it`);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Holds `<file>.lock` while fn runs. Waits up to waitMs for another holder; takes over a dead one's lock. */
export async function withLock<T>(file: string, fn: () => Promise<T>, waitMs = 10_000): Promise<T> {
  const lock = `${file}.lock`;
  const deadline = Date.now() + waitMs;
  for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
    try {
      const fd = openSync(lock, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const owner = Number.parseInt(await readFile(lock, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(owner) && owner > 0 && !pidAlive(owner)) {
      // Rename, don't unlink: of two processes taking over the same stale lock only one rename succeeds,
      // and neither can remove a fresh lock created in between (it would have a live owner).
      const aside = `${lock}.stale-${process.pid}`;
      if (await rename(lock, aside).then(() => true, () => false)) {
        const moved = Number.parseInt(await readFile(aside, 'utf8').catch(() => ''), 10);
        await unlink(aside).catch(() => {});
        if (moved !== owner) {
          // We moved someone's fresh lock: put it back if nobody has taken the name since.
          await writeFile(lock, `${moved}\n`, { flag: 'wx' }).catch(() => {});
        }
      }
      continue;
    }
    if (Date.now() > deadline) throw new StageError('state', `${lock} is held by pid ${owner || '?'} for more than ${waitMs / 1000} s`);
    await sleep(delay);
  }
  try {
    return await fn();
  } finally {
    await unlink(lock).catch(() => {});
  }
}

/**
 * Holds the tree's switch lock (`switch.lock` beside the state file) while fn runs. Everything that moves a
 * node between runs holds it for the whole move: reimage/rescue/diskless (open the run, switch the links,
 * mark the state), normal (switch, mark, end the run) and the watcher (count a report against the open
 * run, record it, switch on done or a retry). Without it two commands interleave their steps (one link of
 * a node on each profile; a state whose run is not the run the links were made for) and a report of a run
 * superseded between its check and its switch flips the new run's links. A reader that holds it sees one
 * consistent node. Taken before the state file's own lock, never inside it.
 */
export async function withSwitchLock<T>(stateFile: string, fn: () => Promise<T>): Promise<T> {
  await mkdir(dirname(stateFile), { recursive: true });
  return withLock(join(dirname(stateFile), 'switch'), fn, 30_000);
}

/**
 * For a reader (status): fn under the switch lock, so the links and the state it reads belong to one
 * moment. Where the state directory is missing or not writable by this user (a read-only status), fn runs
 * without it: a reader never creates the directory or fails for want of the lock.
 */
export async function readUnderSwitchLock<T>(stateFile: string, fn: () => Promise<T>): Promise<T> {
  const writable = await access(dirname(stateFile), constants.W_OK).then(() => true, () => false);
  return writable ? withSwitchLock(stateFile, fn) : fn();
}

/** Read-modify-write of the state file under the lock; returns what fn returns. */
export async function updateState<T>(file: string, fn: (doc: StateDoc) => T): Promise<T> {
  await mkdir(dirname(file), { recursive: true });
  return withLock(file, async () => {
    const doc = await readState(file);
    const result = fn(doc);
    await atomicWrite(file, JSON.stringify(doc, null, 2) + '\n', { durable: true });
    return result;
  });
}

/** Moves a node to a new phase/state, keeping `since` when the state does not change. */
export function transition(doc: StateDoc, node: { name: string; mac: string }, phase: string, state: NodeStatus, at: Date, detail?: string): { prev: NodeState | undefined; next: NodeState } {
  const prev = doc.nodes[node.name];
  const iso = at.toISOString();
  const history = [...(prev?.history ?? []), { at: iso, phase, state }].slice(-HISTORY_TAIL);
  const next: NodeState = {
    name: node.name,
    mac: node.mac,
    phase,
    state,
    since: prev && prev.state === state && state !== 'requested' ? prev.since : iso,
    updated: iso,
    history,
    ...(detail !== undefined ? { detail } : {}),
    ...(prev?.log ? { log: prev.log } : {}),
    // The run's bookkeeping stays with the node from report to report; callers change what moved.
    ...(prev?.run ? { run: prev.run } : {}),
    ...(prev?.tries ? { tries: prev.tries } : {}),
    ...(prev?.runs ? { runs: prev.runs } : {}),
    ...(prev?.progress ? { progress: prev.progress } : {}),
    ...(prev?.phaseStarted ? { phaseStarted: prev.phase === phase ? prev.phaseStarted : iso } : { phaseStarted: iso }),
    ...(prev?.deadline && prev.phase === phase ? { deadline: prev.deadline } : {}),
  };
  doc.nodes[node.name] = next;
  return { prev: prev ? { ...prev } : undefined, next };
}

/**
 * Records a switch by hand: reimage/rescue/diskless mark nodes `requested` (the watcher then expects their reports)
 * in the run `runs` names for each (lifecycle/runs.ts opened it), try 1, with the deadline for the node's
 * first report; normal marks them done with phase `normal`, so nobody waits for an install that will not happen.
 */
export async function markSwitched(
  file: string,
  nodes: readonly { name: string; mac: string }[],
  action: 'reimage' | 'rescue' | 'diskless' | 'normal',
  profile: string,
  at = new Date(),
  o: { runs?: ReadonlyMap<string, string>; deadline?: Date } = {},
): Promise<void> {
  await updateState(file, (doc) => {
    for (const n of nodes) {
      // A run still open is superseded: its end goes into the node's runs, with the phase it was in, so
      // the state says what became of it (a power cut, a second reimage) instead of dropping it.
      const prev = doc.nodes[n.name];
      const open = prev?.run && (prev.state === 'requested' || prev.state === 'installing') ? { ...prev } : undefined;
      if (open && open.run !== o.runs?.get(n.name)) {
        const started = [...open.history].reverse().find((h) => h.phase === 'requested')?.at;
        endRun(open, 'failed', at, started);
        const entry = open.runs!.at(-1)!;
        entry.detail = `superseded by ${action} in phase ${open.phase}`;
        prev!.runs = open.runs;
      }
      if (action === 'normal') {
        const { next } = transition(doc, n, 'normal', 'done', at, `switched to ${profile} by hand`);
        delete next.run;
        delete next.tries;
        delete next.deadline;
        delete next.progress;
        continue;
      }
      const { next } = transition(doc, n, 'requested', 'requested', at, `${action}: switched to ${profile}`);
      const run = o.runs?.get(n.name);
      if (run) next.run = run;
      else delete next.run;
      next.tries = 1;
      next.phaseStarted = at.toISOString();
      if (o.deadline) next.deadline = o.deadline.toISOString();
      else delete next.deadline;
      delete next.progress;
      delete next.parked;
    }
  });
}

/** Where the installers' full logs go: `<state dir>/logs/<node>-<time>.log`. */
export async function storeLog(stateFile: string, node: string, body: Buffer, at = new Date()): Promise<string> {
  const dir = join(dirname(stateFile), 'logs');
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${node}-${at.toISOString().replace(/[:.]/g, '-')}.log`);
  const fd = openSync(file, 'w', 0o644);
  try {
    writeSync(fd, body);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return file;
}

/** How many finished runs a node keeps in `runs`. */
export const RUNS_KEPT = 5;

/** Seconds spent in each phase since `since` (the run's start), summed over retries; the last entry ends at `end`. */
export function phaseSeconds(history: readonly HistoryEntry[], since: string | undefined, end: Date): Record<string, number> {
  const from = since ? Date.parse(since) : -Infinity;
  const mine = history.filter((h) => Date.parse(h.at) >= from);
  const out: Record<string, number> = {};
  mine.forEach((h, i) => {
    const until = i + 1 < mine.length ? Date.parse(mine[i + 1]!.at) : end.getTime();
    if (i + 1 === mine.length && (h.state === 'done' || h.state === 'failed' || h.state === 'timed-out')) return;
    out[h.phase] = Math.round(((out[h.phase] ?? 0) + (until - Date.parse(h.at)) / 1000) * 10) / 10;
  });
  return out;
}

/** Records the end of the node's run in `next` (which transition() just made): no deadline, one more `runs` entry. */
export function endRun(next: NodeState, result: NodeStatus, at: Date, runStarted: string | undefined): void {
  delete next.deadline;
  if (!next.run) return;
  const entry = { run: next.run, result, at: at.toISOString(), phases: phaseSeconds(next.history, runStarted, at) };
  next.runs = [...(next.runs ?? []).filter((r) => r.run !== next.run), entry].slice(-RUNS_KEPT);
}
