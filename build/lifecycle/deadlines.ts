/**
 * Per-phase deadlines and the end of a run, as pure functions on the state: when a node is overdue, and
 * what a finished run leaves in its `runs` history (result and seconds per phase, the last few).
 */
import type { Plan } from '../plan/plan.ts';
import type { NodeState } from './state.ts';

// A run's end is the state's own bookkeeping (state.ts); re-exported for the watcher's callers.
export { endRun, phaseSeconds, RUNS_KEPT } from './state.ts';

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
