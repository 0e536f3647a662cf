/**
 * Install runs and their nonces: which report may count for which node.
 *
 * reimage, rescue and diskless start a run per node: a run id (public: it is in the state file, `status`
 * shows it) and a nonce (secret: 128 random bits). The nonce is written twice, at switch time:
 *   - the run record, `<state dir>/runs/<node>.json`, mode 0600: what the watcher checks reports against;
 *     `status --json` reads only the state file, so it never prints a nonce;
 *   - the node's run file in the served tree, `runs/<mac>` (build/layout.ts), which the node's installer
 *     (and the rescue and diskless scripts) fetch at start and send back as `nonce=` with every report.
 *     nginx (render/nginx.ts) serves it only to the node's fixed IP; a node without one (proxy DHCP) gets
 *     it by MAC alone.
 *
 * What this protects against: another host on the cluster network sending `done` (or anything) for a
 * node — it has no nonce, and where the node has a fixed IP the report must come from that IP too; a
 * report for a node nobody asked to reinstall; a stale installer from an earlier run (its nonce is an old
 * one) finishing the current run; a guessed nonce (2^128).
 * What it does not protect against: anyone who can read the node's run file from the node's IP — root on
 * the node itself (e.g. its installed OS, booted while a run is open), or a host that spoofs the node's IP
 * (or, without a fixed IP, knows its MAC) on the L2 segment — and anyone who can read the served tree or the
 * state directory on node0. Reports travel in plain HTTP: a host that can sniff the segment sees the nonce.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { atomicWrite } from '../lib/atomic.ts';
import { PXELINUX_DIR, RUNS_DIR, runPath } from '../layout.ts';
import { StageError } from '../lib/errors.ts';
import { run } from '../lib/run.ts';
import { shq } from '../render/shell.ts';
import { sshCommand, type Target } from './target.ts';
import { assertServedTree } from './links.ts';
import { markSwitched, type NodeStatus } from './state.ts';
import type { ReportSeq } from './report.ts';

export type RunAction = 'reimage' | 'rescue' | 'diskless';

export interface RunRecord {
  node: string;
  run: string;
  nonce: string;
  action: RunAction;
  profile: string;
  started: string;
  /** Set when the run ended (done, failed, parked): its nonce then counts for nothing but a boot loop. */
  closed?: { at: string; result: NodeStatus };
  /** The last few earlier runs, so a stale installer's report is named as such in the log. */
  old: { run: string; nonce: string }[];
  /**
   * The number (seq=) of the last phase report counted for this run. The installer numbers its reports and
   * retries one until it is answered: a report counted by a node0 that died before it could answer comes
   * again with the same number, and is answered without being counted twice.
   */
  seq?: ReportSeq;
}

const OLD_KEPT = 5;
export const NONCE_RE = /^[0-9a-f]{32}$/;

export const runRecordFile = (stateFile: string, node: string): string => join(dirname(stateFile), 'runs', `${node}.json`);

/** `20261126-163712-3fa9`: sortable, readable in a table, unique enough per node (time + 16 random bits). */
export function newRunId(at: Date): string {
  return `${at.toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', '-')}-${randomBytes(2).toString('hex')}`;
}

/** The run file the node fetches: two `key=value` lines, parsed (not sourced) by common/lib/10-report.sh. */
export function runFileText(run: string, nonce: string): string {
  return `run=${run}\nnonce=${nonce}\n`;
}

export async function readRunRecord(stateFile: string, node: string): Promise<RunRecord | null> {
  const text = await readFile(runRecordFile(stateFile, node), 'utf8').catch(() => null);
  if (!text) return null;
  try {
    return JSON.parse(text) as RunRecord;
  } catch {
    return null;
  }
}

async function writeRecord(stateFile: string, rec: RunRecord): Promise<void> {
  const file = runRecordFile(stateFile, rec.node);
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  // Created 0600 under its temp name, so the nonce is never readable by others, not even for an instant.
  await atomicWrite(file, JSON.stringify(rec, null, 2) + '\n', { mode: 0o600, durable: true });
}

/**
 * Opens a run for each node: a new run id and nonce, the record (0600) under the state dir, and the run
 * file in the served tree (written then renamed, so the installer never reads half of one). Returns each
 * node's run id.
 */
export async function openRuns(o: { stateFile: string; root: string; nodes: readonly { name: string; mac: string }[]; action: RunAction; profile: string; at?: Date }): Promise<Map<string, string>> {
  const at = o.at ?? new Date();
  const ids = new Map<string, string>();
  // A typo in --root must not grow a runs/ directory somewhere: the tree must be there first.
  await assertServedTree(o.root, o.action);
  await mkdir(join(o.root, RUNS_DIR), { recursive: true, mode: 0o755 });
  for (const n of o.nodes) {
    const prev = await readRunRecord(o.stateFile, n.name);
    const rec: RunRecord = {
      node: n.name,
      run: newRunId(at),
      nonce: randomBytes(16).toString('hex'),
      action: o.action,
      profile: o.profile,
      started: at.toISOString(),
      old: prev ? [{ run: prev.run, nonce: prev.nonce }, ...prev.old].slice(0, OLD_KEPT) : [],
    };
    // The record first: a node that fetches the new run file must find its nonce known to the watcher.
    await writeRecord(o.stateFile, rec);
    // Readable by nginx's workers (they serve it); nginx's allow/deny decides who gets it.
    await atomicWrite(join(o.root, runPath(n.mac)), runFileText(rec.run, rec.nonce), { mode: 0o644 });
    ids.set(n.name, rec.run);
  }
  return ids;
}

/**
 * openRuns on node0 over ssh (reimage --ssh): the same two files, written there by one sh script read
 * from ssh's stdin, so the nonces appear in no command line on either side. The record starts without
 * earlier runs (a stale installer is then "a nonce of no run": still ignored). The state file is not
 * touched: the watcher there takes the run up with the node's first report.
 */
export async function openRunsRemote(o: { target: Target & { host: string }; stateFile: string; root: string; nodes: readonly { name: string; mac: string }[]; action: RunAction; profile: string; at?: Date }): Promise<Map<string, string>> {
  const at = o.at ?? new Date();
  const ids = new Map<string, string>();
  const lines = ['set -eu', `cd -- ${shq(o.root)} || exit 3`, `[ -d ${shq(PXELINUX_DIR)} ] || { echo no served tree at ${shq(o.root)} >&2; exit 3; }`];
  for (const n of o.nodes) {
    const rec: RunRecord = { node: n.name, run: newRunId(at), nonce: randomBytes(16).toString('hex'), action: o.action, profile: o.profile, started: at.toISOString(), old: [] };
    const file = runRecordFile(o.stateFile, n.name);
    lines.push(
      `umask 077; mkdir -p -- ${shq(dirname(file))}; printf '%s\\n' ${shq(JSON.stringify(rec))} > ${shq(file + '.tmp')}; mv -f -- ${shq(file + '.tmp')} ${shq(file)}`,
      `umask 022; mkdir -p -- ${shq(RUNS_DIR)}; printf '%s' ${shq(runFileText(rec.run, rec.nonce))} > ${shq(runPath(n.mac) + '.tmp')}; mv -f -- ${shq(runPath(n.mac) + '.tmp')} ${shq(runPath(n.mac))}`,
    );
    ids.set(n.name, rec.run);
  }
  const r = await run([...sshCommand(o.target), '--', o.target.host, 'sh -s'], { input: lines.join('\n') + '\n', nothrow: true, timeoutMs: 60_000 });
  if (r.exitCode !== 0) throw new StageError(o.action, `opening the runs on ${o.target.host} failed (exit ${r.exitCode}): ${r.stderr.trim()}; nothing was switched`);
  return ids;
}

/** Ends the node's current run (its nonce stops counting); a no-op when `run` is no longer current. */
export async function closeRun(stateFile: string, node: string, run: string, result: NodeStatus, at = new Date()): Promise<void> {
  const rec = await readRunRecord(stateFile, node);
  if (!rec || rec.run !== run || rec.closed) return;
  await writeRecord(stateFile, { ...rec, closed: { at: at.toISOString(), result } });
}

/**
 * Records that report `seq` of `run` was counted (after its state change, and for `done` after the switch:
 * a crash before this line leaves the retry to be counted again, which changes nothing twice that matters;
 * a crash after it, to be answered as the retry it is). A no-op when `run` is no longer the node's.
 */
export async function noteCounted(stateFile: string, node: string, run: string, seq: ReportSeq): Promise<void> {
  const rec = await readRunRecord(stateFile, node);
  if (!rec || rec.run !== run || isRetry(rec, seq)) return;
  await writeRecord(stateFile, { ...rec, seq });
}

/** Was report `seq` of this boot counted already (a retry)? */
export function isRetry(rec: RunRecord, seq: ReportSeq): boolean {
  return !!rec.seq && rec.seq.boot === seq.boot && seq.n <= rec.seq.n;
}

/** Ends whatever run the node has open (`normal` switched it by hand): recorded as failed, i.e. not finished. */
export async function endOpenRun(stateFile: string, node: string, at = new Date()): Promise<void> {
  const rec = await readRunRecord(stateFile, node);
  if (rec && !rec.closed) await closeRun(stateFile, node, rec.run, 'failed', at);
}

export type NonceMatch =
  | { kind: 'current'; run: string }
  | { kind: 'closed'; run: string; closed: NonNullable<RunRecord['closed']> }
  | { kind: 'old'; run: string }
  | { kind: 'missing' }
  | { kind: 'wrong' }
  | { kind: 'no-run' };

const same = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

/** Which run (if any) a report's nonce belongs to; compared in constant time. */
export function matchNonce(rec: RunRecord | null, nonce: string | undefined): NonceMatch {
  if (!rec) return { kind: 'no-run' };
  if (!nonce) return { kind: 'missing' };
  if (!NONCE_RE.test(nonce)) return { kind: 'wrong' };
  if (same(nonce, rec.nonce)) return rec.closed ? { kind: 'closed', run: rec.run, closed: rec.closed } : { kind: 'current', run: rec.run };
  const old = rec.old.find((o) => same(nonce, o.nonce));
  return old ? { kind: 'old', run: old.run } : { kind: 'wrong' };
}

/**
 * Opens runs and marks the nodes requested (try 1, with the deadline for their first report): what
 * reimage/rescue/diskless do around the link switch, for callers that switch the links themselves (the
 * lab harness) or not at all.
 */
export async function startRuns(o: { stateFile: string; root: string; nodes: readonly { name: string; mac: string }[]; action: RunAction; profile: string; requestedMinutes: number; at?: Date }): Promise<Map<string, string>> {
  const at = o.at ?? new Date();
  const runs = await openRuns({ ...o, at });
  await markSwitched(o.stateFile, o.nodes, o.action, o.profile, at, { runs, deadline: new Date(at.getTime() + o.requestedMinutes * 60_000) });
  return runs;
}
