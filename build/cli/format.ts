/** Plain-text output shared by status, watch and serve: relative times, aligned columns, watcher event lines. */
import type { WatchEvent } from '../lifecycle/watch.ts';

export function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

/** One watcher event as a line: time, node, state, phase, a link switch and the last detail line. */
export function eventLine(e: WatchEvent): string {
  const what = e.switched ? ` → switched ${e.switched.from ?? '(none)'} -> ${e.switched.to}` : '';
  const detail = e.error ?? (e.detail ? e.detail.split('\n').pop() : '');
  return `${e.at.replace(/\.\d+Z$/, 'Z')} ${(e.node ?? '?').padEnd(10)} ${e.state.padEnd(10)} ${e.phase}${what}${detail ? `  (${detail})` : ''}`;
}
