/**
 * What the status views show, as a pure function: plan + state document + the links read from the served
 * tree → one row per node, and the summary line. The web page (status-page.ts), `status --watch` and the
 * tests all read these rows, so a node looks the same everywhere and the rendering can be tested without
 * a browser or a terminal.
 */
import type { PlanNode } from '../plan/plan.ts';
import type { NodeState, NodeStatus, StateDoc } from './state.ts';

export interface RowProgress {
  bytes: number;
  total: number;
  rateBps: number;
  /** When the node reported these figures. */
  at: string;
  /** 0–100, one decimal; null when the node does not know the total. */
  percent: number | null;
  /** Seconds left at the reported rate, counted from `at`; null when unknown. */
  etaS: number | null;
  /** progressText(): the words both views print beside the bar. */
  text: string;
}

export interface StatusRow {
  name: string;
  mac: string;
  ip: string | null;
  firmware: string;
  loader: string;
  /** The profile the node's primary link points at now (null: no link). */
  profile: string | null;
  /** null: the watcher has never heard of the node (nothing requested since the state file began). */
  state: NodeStatus | null;
  phase: string | null;
  /** The last line of the detail (a failure's last log line, a timeout's reason). */
  detail: string | null;
  /** When the current phase began: the watcher's phaseStarted, else the state's since. */
  phaseStarted: string | null;
  deadline: string | null;
  /** Last report or change. */
  updated: string | null;
  tries: number | null;
  run: string | null;
  parked: string | null;
  /** Only while the node is downloading its image. */
  progress: RowProgress | null;
  /** A stored install log can be fetched by the node's name. */
  log: boolean;
}

export interface StatusSummary {
  nodes: number;
  requested: number;
  installing: number;
  done: number;
  failed: number;
  timedOut: number;
  /** No state recorded. */
  idle: number;
}

export type StatusNode = Pick<PlanNode, 'name' | 'mac' | 'firmware' | 'loader'> & { ip?: string };

function progressOf(s: NodeState): RowProgress | null {
  const p = s.progress;
  // Progress is the image download's: shown while the node is in it, not as a stale bar after it.
  if (!p || s.state !== 'installing' || s.phase !== 'download') return null;
  const percent = p.total > 0 ? Math.min(100, Math.round((p.bytes / p.total) * 1000) / 10) : null;
  const etaS = p.total > 0 && p.rateBps > 0 ? Math.max(0, Math.round((p.total - p.bytes) / p.rateBps)) : null;
  const figures = { bytes: p.bytes, total: p.total, rateBps: p.rateBps, at: p.at, percent, etaS };
  return { ...figures, text: progressText(figures) };
}

export function statusRow(node: StatusNode, s: NodeState | undefined, profile: string | null): StatusRow {
  return {
    name: node.name,
    mac: node.mac,
    ip: node.ip ?? null,
    firmware: node.firmware,
    loader: node.loader,
    profile,
    state: s?.state ?? null,
    phase: s?.phase ?? null,
    detail: s?.detail ? (s.detail.replace(/\s+$/, '').split('\n').pop() ?? null) : null,
    phaseStarted: s ? (s.phaseStarted ?? s.since) : null,
    deadline: s?.deadline ?? null,
    updated: s?.updated ?? null,
    tries: s?.tries ?? null,
    run: s?.run ?? null,
    parked: s?.parked ?? null,
    progress: s ? progressOf(s) : null,
    log: Boolean(s?.log),
  };
}

/** One row per node of the plan, in the plan's order; state for nodes no longer in the spec is not shown. */
export function statusRows(nodes: readonly StatusNode[], doc: StateDoc, profiles: ReadonlyMap<string, string | null>): StatusRow[] {
  return nodes.map((n) => statusRow(n, doc.nodes[n.name], profiles.get(n.name) ?? null));
}

export function summarize(rows: readonly StatusRow[]): StatusSummary {
  const s: StatusSummary = { nodes: rows.length, requested: 0, installing: 0, done: 0, failed: 0, timedOut: 0, idle: 0 };
  for (const r of rows) {
    if (r.state === 'requested') s.requested++;
    else if (r.state === 'installing') s.installing++;
    else if (r.state === 'done') s.done++;
    else if (r.state === 'failed') s.failed++;
    else if (r.state === 'timed-out') s.timedOut++;
    else s.idle++;
  }
  return s;
}

export function summaryLine(s: StatusSummary): string {
  return `${s.nodes} nodes: ${s.installing} installing, ${s.requested} requested, ${s.done} done, ${s.failed} failed, ${s.timedOut} timed out, ${s.idle} idle`;
}

/** Rows that differ from the previous set (by name), for sending only what changed. */
export function changedRows(prev: ReadonlyMap<string, StatusRow>, rows: readonly StatusRow[]): StatusRow[] {
  return rows.filter((r) => {
    const p = prev.get(r.name);
    return !p || JSON.stringify(p) !== JSON.stringify(r);
  });
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
export function formatBytes(n: number): string {
  let i = 0;
  let v = n;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${UNITS[i]}`;
}

/** 75 → `1:15`, 4000 → `1:06:40`. */
export function formatDuration(s: number): string {
  const t = Math.max(0, Math.round(s));
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = String(t % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** `1.2 GiB / 3.4 GiB · 110 MiB/s · ETA 0:20` — the page and the terminal print the same words. */
export function progressText(p: Omit<RowProgress, 'text'>): string {
  return [
    p.total > 0 ? `${formatBytes(p.bytes)} / ${formatBytes(p.total)}` : formatBytes(p.bytes),
    `${formatBytes(p.rateBps)}/s`,
    p.etaS !== null ? `ETA ${formatDuration(p.etaS)}` : 'ETA ?',
  ].join(' · ');
}

/** Seconds in the current phase at `now`, and whether the phase's deadline has passed. */
export function phaseClock(r: Pick<StatusRow, 'phaseStarted' | 'deadline' | 'state'>, now: number): { seconds: number | null; overdue: boolean } {
  const active = r.state === 'requested' || r.state === 'installing';
  const seconds = r.phaseStarted ? Math.max(0, (now - Date.parse(r.phaseStarted)) / 1000) : null;
  return { seconds, overdue: active && r.deadline !== null && now > Date.parse(r.deadline) };
}
