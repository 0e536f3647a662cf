/**
 * Per-phase deadlines and the end of a run, as pure functions on the state: when a node is overdue, and
 * what a finished run leaves in its `runs` history (result and seconds per phase, the last few).
 */
import type { Plan } from '../plan/plan.ts';
import type { HistoryEntry, NodeState, NodeStatus } from './state.ts';

export const RUNS_KEPT = 5;

type Deadlines = Pick<Plan['phoneHome'], 'deadlines' | 'timeoutMinutes'>;

/** How long a node may stay in `phase`: the override (watch --timeout), the spec's deadline, else timeoutMinutes. */
export function deadlineMs(p: Deadlines, phase: string, overrideMs?: number): number {
  if (overrideMs !== undefined) return overrideMs;
  const minutes = (p.deadlines as Record<string, number | undefined>)[phase] ?? p.timeoutMinutes;
  return minutes * 60_000;
}

/**
 * The phases the image streams through: their deadline counts from the last progress report that moved,
 * so a long download that keeps moving is never overdue, and one that stalls is, the phase's deadline later.
 */
export const STREAMING: readonly string[] = ['download', 'extract'];

/** When the node's current phase is overdue (epoch ms). */
export function dueAt(s: NodeState, p: Deadlines, overrideMs?: number): number {
  if (s.deadline && overrideMs === undefined) return Date.parse(s.deadline);
  const moved = STREAMING.includes(s.phase) && s.progress ? Date.parse(s.progress.at) : 0;
  return Math.max(Date.parse(s.phaseStarted ?? s.updated), moved) + deadlineMs(p, s.phase, overrideMs);
}

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
