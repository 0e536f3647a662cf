/**
 * A phone-home report as the watcher receives it: parsed from its URL (`<path>/<kind>?host=&mac=&nonce=…`,
 * over HTTP or from a line of nginx's access log), with the address it came from.
 */
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type { PlanNode } from '../plan/plan.ts';
import type { SwitchResult } from './links.ts';
import type { NodeState, NodeStatus } from './state.ts';
import { parseMac } from '../spec/values.ts';

export const PHASES = ['start', 'disk', 'partition', 'download', 'extract', 'configure', 'done', 'rescue-ready', 'diskless-ready'] as const;
/** Reports that are not phases: the installer's log, a failure, and download progress. */
/** inventory: a machine's self-description (discover profile), taken from known and unknown MACs alike. */
export const OTHER_KINDS = ['failed', 'log', 'progress', 'inventory'] as const;
const BODY_LIMIT = 16 * 1024 * 1024;

export interface Report {
  /** A PHASES member or one of OTHER_KINDS. */
  kind: string;
  host?: string;
  mac?: string;
  /** For `failed`: the phase that failed. */
  phase?: string;
  /** The run's nonce, as the node fetched it from its run file (lifecycle/runs.ts). */
  nonce?: string;
  /**
   * A phase report's number within the installer's boot (`seq=BOOT.N`: the kernel's boot id, then 1, 2, …):
   * a retry of one already counted carries the same number and is answered, not counted again (runs.ts
   * RunRecord.seq). A new boot has a new id, so its `start` is never taken for a retry.
   */
  seq?: ReportSeq;
  /** For `progress`: bytes of the image so far, its size, and the rate over the last interval. */
  progress?: { bytes: number; total: number; rateBps: number };
  /** The address the report came from (the node's, as nginx saw it). */
  from?: string;
  body?: Buffer;
}

const COUNT = /^\d{1,15}$/;

export interface ReportSeq {
  boot: string;
  n: number;
}
const SEQ = /^([0-9a-f]{32})\.([1-9]\d{0,5})$/;

/** `<path>/<kind>?host=&mac=&phase=&nonce=&seq=` → Report, or an error message. */
export function parseReportUrl(url: string, basePath: string): Report | string {
  const u = new URL(url, 'http://watcher');
  const prefix = basePath.replace(/\/+$/, '') + '/';
  if (!u.pathname.startsWith(prefix)) return `not under ${prefix}`;
  const kind = u.pathname.slice(prefix.length);
  if (!(PHASES as readonly string[]).includes(kind) && !(OTHER_KINDS as readonly string[]).includes(kind)) return `unknown report "${kind}"`;
  const get = (k: string) => u.searchParams.get(k) || undefined;
  const r: Report = { kind };
  for (const k of ['host', 'mac', 'phase', 'nonce'] as const) {
    const v = get(k);
    if (v) r[k] = v;
  }
  if (!r.host && !r.mac) return 'a report needs host= or mac=';
  const seq = get('seq');
  if (seq !== undefined) {
    const m = SEQ.exec(seq);
    if (!m) return 'seq= is BOOT.N: a 32-hex-digit boot id and a report number from 1 to 999999';
    r.seq = { boot: m[1]!, n: Number(m[2]) };
  }
  if (kind === 'progress') {
    const [bytes, total, rate] = ['bytes', 'total', 'rate'].map((k) => get(k) ?? '');
    if (!COUNT.test(bytes!) || !COUNT.test(total!) || !COUNT.test(rate!)) return 'a progress report needs bytes=, total= and rate= (integers)';
    r.progress = { bytes: Number(bytes), total: Number(total), rateBps: Number(rate) };
  }
  return r;
}

/** The MAC decides (it is what the links are named after); the host name is the fallback. */
export function findNode(nodes: readonly PlanNode[], r: Pick<Report, 'host' | 'mac'>): PlanNode | undefined {
  const mac = r.mac ? parseMac(r.mac) : null;
  return (mac ? nodes.find((n) => n.mac === mac) : undefined) ?? nodes.find((n) => n.name === r.host);
}

const isLoopback = (a: string) => a === '::1' || a.startsWith('127.');

/**
 * Who sent a request: the peer's address, or — only when the peer is loopback, i.e. node0's own nginx in
 * front of us — the X-Real-IP header nginx sets to its client's address. A header from anywhere else is
 * ignored: a node could write any X-Real-IP it likes.
 */
export function clientAddress(req: IncomingMessage): string | undefined {
  const peer = req.socket.remoteAddress?.replace(/^::ffff:/, '');
  if (!peer || !isLoopback(peer)) return peer;
  const header = req.headers['x-real-ip'];
  const real = typeof header === 'string' ? header.trim().replace(/^::ffff:/, '') : '';
  return real && isIP(real) ? real : peer;
}

export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > BODY_LIMIT) {
        reject(new Error('body too large'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export function lastLines(body: Buffer | undefined, n = 10): string | undefined {
  const text = body?.toString('utf8').replace(/\s+$/, '');
  return text ? text.split('\n').slice(-n).join('\n') : undefined;
}

/** What the watcher did with a report (or a deadline): one per line of `watch --json`, serve's `report` events. */
export interface WatchEvent {
  at: string;
  source: 'http' | 'access-log' | 'timer';
  node: string | null;
  mac: string | null;
  phase: string;
  /** `ignored`: a report that did not count (detail says why); `progress`: a download progress report. */
  state: NodeStatus | 'unknown' | 'log' | 'ignored' | 'progress' | 'inventory';
  prev?: NodeStatus;
  detail?: string;
  switched?: SwitchResult;
  error?: string;
  run?: string;
  tries?: number;
  progress?: NonNullable<NodeState['progress']>;
  parked?: string;
  /** Where the report came from (the node's address as nginx saw it). */
  from?: string;
}
