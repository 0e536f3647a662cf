/**
 * `status --watch` on a terminal and in a pipe, as pure functions of the rows (lifecycle/status-rows.ts):
 * screen() is the whole redrawn view for a terminal of a given size, changeLine() the one line a pipe gets
 * per change. The command only decides when to call them; the tests call them directly.
 */
import { formatDuration, phaseClock, summaryLine, type StatusRow, type StatusSummary } from '../lifecycle/status-rows.ts';
import { ago, table } from './format.ts';

const STATE_WORDS: Record<string, string> = { requested: 'requested', installing: 'installing', done: 'done', failed: 'FAILED', 'timed-out': 'TIMED OUT' };
/** Who gets a line first when the terminal is too short for every node. */
const PRIORITY: Record<string, number> = { installing: 0, requested: 1, failed: 2, 'timed-out': 2, done: 3 };

export function stateWord(r: Pick<StatusRow, 'state' | 'parked'>): string {
  return r.state === null ? '-' : (STATE_WORDS[r.state] ?? r.state) + (r.parked ? ' (parked)' : '');
}

/** `[#######.......]  45.0% 1.2 GiB / 3.4 GiB · 110 MiB/s · ETA 0:20`, or '' when not downloading. */
export function progressCell(r: Pick<StatusRow, 'progress'>, barWidth = 14): string {
  const p = r.progress;
  if (!p) return '';
  const filled = p.percent === null ? 0 : Math.round((p.percent / 100) * barWidth);
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}]`;
  return `${bar} ${p.percent === null ? '   ?' : `${p.percent.toFixed(1).padStart(5)}%`} ${p.text}`;
}

function clockCell(r: StatusRow, now: number): string {
  const c = phaseClock(r, now);
  return c.seconds === null ? '-' : formatDuration(c.seconds) + (c.overdue ? ' OVERDUE' : '');
}

function cut(line: string, width: number): string {
  return line.length > width ? line.slice(0, Math.max(0, width - 1)) + '…' : line;
}

export interface ScreenOptions {
  now: number;
  width: number;
  height: number;
  title: string;
}

/** The whole terminal view: title, summary, a table that fits the height (busy nodes first when it must). */
export function screen(rows: readonly StatusRow[], summary: StatusSummary, o: ScreenOptions): string[] {
  const head = [o.title, summaryLine(summary), ''];
  const room = Math.max(1, o.height - head.length - 2);
  let shown = [...rows];
  let hidden = 0;
  if (shown.length > room) {
    shown = shown
      .map((r, i) => ({ r, i }))
      .sort((a, b) => (PRIORITY[a.r.state ?? ''] ?? 4) - (PRIORITY[b.r.state ?? ''] ?? 4) || a.i - b.i)
      .slice(0, room - 1)
      .sort((a, b) => a.i - b.i)
      .map((x) => x.r);
    hidden = rows.length - shown.length;
  }
  const body = [['NODE', 'MAC', 'IP', 'BOOT', 'PROFILE', 'STATE', 'PHASE', 'DOWNLOAD', 'IN PHASE', 'REPORT', 'TRIES']];
  for (const r of shown)
    body.push([r.name, r.mac, r.ip ?? 'dhcp', `${r.firmware}/${r.loader}`, r.profile ?? '(no link)', stateWord(r), r.phase ?? '-', progressCell(r), clockCell(r, o.now), r.updated ? ago(r.updated, o.now) : '-', r.tries === null ? '-' : String(r.tries)]);
  const lines = [...head, ...table(body).split('\n')];
  if (hidden) lines.push(`… ${hidden} more nodes (done or idle) — a taller terminal shows them`);
  return lines.map((l) => cut(l, o.width));
}

/** Cursor home, each line cleared to its end, the rest of the screen cleared: a redraw without flicker. */
export function redrawSequence(lines: readonly string[]): string {
  return '\x1b[H' + lines.map((l) => `${l}\x1b[K`).join('\n') + '\n\x1b[J';
}

/** One line per change for a pipe: time, node, state, phase, and what is worth a line about it. */
export function changeLine(r: StatusRow, now: number): string {
  const at = new Date(now).toISOString().replace(/\.\d+Z$/, 'Z');
  const extra = [
    r.progress ? progressCell(r, 10) : '',
    r.profile ? `link ${r.profile}` : 'no link',
    r.tries !== null ? `try ${r.tries}` : '',
    r.deadline && phaseClock(r, now).overdue ? 'overdue' : '',
    (r.state === 'failed' || r.state === 'timed-out' || r.parked) && r.detail ? `(${r.detail})` : '',
  ].filter(Boolean);
  return [at, r.name.padEnd(10), stateWord(r).padEnd(10), (r.phase ?? '-').padEnd(9), ...extra].join(' ');
}
