/**
 * The watcher ends every install: it receives the installers' phone-home reports (over HTTP, proxied by
 * nginx, or from nginx's access log), keeps each node's state in the state file, and switches a node to
 * its OS profile when its installer reports `done` — before answering, so by the time the installer sees
 * 200 and reboots, the node's link already points at the OS. `failed` and timeouts leave the links alone.
 *
 * Reports are handled one at a time (a promise queue): events come out in order and the state file's lock
 * is never contended by the watcher itself.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Plan, PlanNode } from '../plan/plan.ts';
import { parseMac } from '../spec/values.ts';
import { switchNodes, type SwitchResult } from './links.ts';
import { FINISHED, readState, storeLog, transition, updateState, type NodeStatus } from './state.ts';
import { createStatusPage, type StatusPage } from './status-page.ts';
import { parseAccessLine, tailFile, type Tailer } from './tail.ts';
import type { Target } from './target.ts';

export const PHASES = ['start', 'disk', 'partition', 'download', 'extract', 'configure', 'done', 'rescue-ready', 'diskless-ready'] as const;
/** Reports after which a node runs where it is, in a profile that stays: nothing to switch. */
const RUNNING: readonly string[] = ['rescue-ready', 'diskless-ready'];
const BODY_LIMIT = 16 * 1024 * 1024;

export interface Report {
  /** A PHASES member, `failed` or `log`. */
  kind: string;
  host?: string;
  mac?: string;
  /** For `failed`: the phase that failed. */
  phase?: string;
  body?: Buffer;
}

export interface WatchEvent {
  at: string;
  source: 'http' | 'access-log' | 'timer';
  node: string | null;
  mac: string | null;
  phase: string;
  state: NodeStatus | 'unknown' | 'log';
  prev?: NodeStatus;
  detail?: string;
  switched?: SwitchResult;
  error?: string;
}

export type WatchPlan = Pick<Plan, 'nodes' | 'profiles' | 'phoneHome'>;

export interface WatchOptions {
  plan: WatchPlan;
  root: string;
  target?: Target;
  stateFile: string;
  /** HTTP listener; null = none (access log only). Port 0 picks a free one. */
  listen: { host: string; port: number } | null;
  accessLog?: string;
  /** Read the access log from its start instead of its end. */
  accessLogFromStart?: boolean;
  /** No report for this long → timed out. */
  timeoutMs: number;
  onEvent: (e: WatchEvent) => void;
}

export interface Watcher {
  address: AddressInfo | null;
  /** Nodes this run is responsible for: requested or installing at start, or reporting since. */
  watched: Set<string>;
  /** Resolves when every watched node has finished (none watched yet: keeps waiting). true = all done. */
  finished: Promise<boolean>;
  close(): Promise<void>;
}

/** `<path>/<kind>?host=&mac=&phase=` → Report, or an error message. */
export function parseReportUrl(url: string, basePath: string): Report | string {
  const u = new URL(url, 'http://watcher');
  const prefix = basePath.replace(/\/+$/, '') + '/';
  if (!u.pathname.startsWith(prefix)) return `not under ${prefix}`;
  const kind = u.pathname.slice(prefix.length);
  if (!(PHASES as readonly string[]).includes(kind) && kind !== 'failed' && kind !== 'log') return `unknown report "${kind}"`;
  const get = (k: string) => u.searchParams.get(k) || undefined;
  const r: Report = { kind };
  const host = get('host');
  const mac = get('mac');
  const phase = get('phase');
  if (host) r.host = host;
  if (mac) r.mac = mac;
  if (phase) r.phase = phase;
  if (!r.host && !r.mac) return 'a report needs host= or mac=';
  return r;
}

/** The MAC decides (it is what the links are named after); the host name is the fallback. */
export function findNode(nodes: readonly PlanNode[], r: Pick<Report, 'host' | 'mac'>): PlanNode | undefined {
  const mac = r.mac ? parseMac(r.mac) : null;
  return (mac ? nodes.find((n) => n.mac === mac) : undefined) ?? nodes.find((n) => n.name === r.host);
}

function lastLines(body: Buffer | undefined, n = 10): string | undefined {
  const text = body?.toString('utf8').replace(/\s+$/, '');
  return text ? text.split('\n').slice(-n).join('\n') : undefined;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
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

export async function startWatcher(o: WatchOptions): Promise<Watcher> {
  const { plan } = o;
  const watched = new Set<string>();
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = queue.then(fn);
    queue = p.catch(() => {});
    return p;
  };
  let resolveFinished!: (ok: boolean) => void;
  const finished = new Promise<boolean>((r) => (resolveFinished = r));

  async function checkFinished(): Promise<void> {
    if (!watched.size) return;
    const doc = await readState(o.stateFile);
    const states = [...watched].map((n) => doc.nodes[n]?.state);
    if (states.every((s) => s && FINISHED.has(s))) resolveFinished(states.every((s) => s === 'done'));
  }

  function emit(e: WatchEvent): WatchEvent {
    o.onEvent(e);
    return e;
  }

  async function handle(r: Report, source: WatchEvent['source']): Promise<WatchEvent> {
    const at = new Date();
    const node = findNode(plan.nodes, r);
    if (!node) return emit({ at: at.toISOString(), source, node: null, mac: r.mac ?? null, phase: r.kind, state: 'unknown', detail: `no node ${r.host ?? ''} ${r.mac ?? ''} in the spec`.replace(/\s+/g, ' ') });
    const base = { at: at.toISOString(), source, node: node.name, mac: node.mac };
    if (r.kind === 'log') {
      const file = r.body?.length ? await storeLog(o.stateFile, node.name, r.body, at) : undefined;
      if (file) await updateState(o.stateFile, (doc) => void (doc.nodes[node.name] ? (doc.nodes[node.name]!.log = file) : undefined));
      return emit({ ...base, phase: 'log', state: 'log', ...(file ? { detail: file } : { detail: 'no log body (access log input)' }) });
    }
    const state: NodeStatus = r.kind === 'failed' ? 'failed' : r.kind === 'done' || RUNNING.includes(r.kind) ? 'done' : 'installing';
    const phase = r.kind === 'failed' ? (r.phase ?? 'unknown') : r.kind;
    const detail = r.kind === 'failed' ? (lastLines(r.body) ?? (source === 'access-log' ? 'failed (the body is not in the access log)' : 'failed')) : undefined;
    const { prev } = await updateState(o.stateFile, (doc) => transition(doc, node, phase, state, at, detail));
    watched.add(node.name);
    const event: WatchEvent = { ...base, phase, state, ...(prev ? { prev: prev.state } : {}), ...(detail ? { detail } : {}) };
    if (r.kind === 'done') {
      try {
        event.switched = (await switchNodes([node], plan.profiles.os, { root: o.root, ...(o.target ? { target: o.target } : {}) }))[0];
      } catch (e) {
        // Installed but still booting the installer: the loop we exist to prevent. Say so loudly.
        event.error = `installed, but switching to ${plan.profiles.os} failed: ${(e as Error).message}`;
        event.state = 'failed';
        await updateState(o.stateFile, (doc) => transition(doc, node, phase, 'failed', new Date(), event.error));
      }
    }
    emit(event);
    await checkFinished();
    return event;
  }

  async function checkTimeouts(): Promise<void> {
    const doc = await readState(o.stateFile);
    const now = Date.now();
    for (const s of Object.values(doc.nodes)) {
      if (s.state === 'requested' || s.state === 'installing') watched.add(s.name);
    }
    for (const name of watched) {
      const s = doc.nodes[name];
      if (!s || (s.state !== 'requested' && s.state !== 'installing') || now - Date.parse(s.updated) < o.timeoutMs) continue;
      const node = plan.nodes.find((n) => n.name === name);
      if (!node) continue;
      await serial(async () => {
        const at = new Date();
        // Re-check under the lock: a report may have arrived since we read the file.
        const t = await updateState(o.stateFile, (d) => {
          const cur = d.nodes[name];
          if (!cur || (cur.state !== 'requested' && cur.state !== 'installing') || at.getTime() - Date.parse(cur.updated) < o.timeoutMs) return null;
          const detail = `no report for ${Math.round((at.getTime() - Date.parse(cur.updated)) / 1000)} s (last: ${cur.phase})`;
          return { ...transition(d, node, cur.phase, 'timed-out', at, detail), detail };
        });
        if (t) emit({ at: at.toISOString(), source: 'timer', node: name, mac: node.mac, phase: t.next.phase, state: 'timed-out', prev: t.prev?.state ?? 'installing', detail: t.detail });
      });
    }
    await checkFinished();
  }

  let server: Server | null = null;
  let address: AddressInfo | null = null;
  let page: StatusPage | null = null;
  if (o.listen) {
    // The live status page (read-only) shares the listener: nginx proxies STATUS_PATH here too.
    page = createStatusPage({ nodes: plan.nodes, osProfile: plan.profiles.os, root: o.root, ...(o.target ? { target: o.target } : {}), stateFile: o.stateFile });
    server = createServer((req, res) => {
      if (page!.handle(req, res)) return;
      const parsed = parseReportUrl(req.url ?? '/', plan.phoneHome.path);
      const reply = (status: number, text: string) => {
        res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
        res.end(text + '\n');
      };
      if (typeof parsed === 'string') return void reply(parsed.startsWith('not under') ? 404 : 400, parsed);
      readBody(req)
        .then(async (body) => {
          if (body.length) parsed.body = body;
          const e = await serial(() => handle(parsed, 'http'));
          reply(e.state === 'unknown' ? 404 : 200, e.state === 'unknown' ? (e.detail ?? 'unknown node') : 'ok');
        })
        .catch((e: Error) => reply(500, e.message));
    });
    await new Promise<void>((resolve, reject) => {
      server!.once('error', (e) => {
        page!.close(); // its feed's timers would keep a failed start alive
        reject(e);
      });
      server!.listen(o.listen!.port, o.listen!.host, () => resolve());
    });
    address = server.address() as AddressInfo;
  }

  let tailer: Tailer | null = null;
  if (o.accessLog) {
    tailer = tailFile(
      o.accessLog,
      (line) => {
        const l = parseAccessLine(line);
        if (!l) return;
        // With the HTTP listener on, a 2xx line is a report nginx already delivered to us: skip it.
        if (o.listen && l.status < 300) return;
        const r = parseReportUrl(l.url, plan.phoneHome.path);
        if (typeof r !== 'string') void serial(() => handle(r, 'access-log')).catch(() => {});
      },
      { fromStart: o.accessLogFromStart ?? false },
    );
    await tailer.ready;
  }

  const tickMs = Math.max(100, Math.min(5000, o.timeoutMs / 4));
  // Who we wait for is known at once; overdue nodes are reported on the first tick, after the caller's banner.
  for (const s of Object.values((await readState(o.stateFile)).nodes)) if (s.state === 'requested' || s.state === 'installing') watched.add(s.name);
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const loop = () => {
    timer = setTimeout(() => {
      checkTimeouts()
        .catch(() => {})
        .finally(() => {
          if (!stopped) loop();
        });
    }, tickMs);
  };
  loop();

  return {
    address,
    watched,
    finished,
    async close() {
      stopped = true;
      clearTimeout(timer);
      await tailer?.stop();
      page?.close();
      if (server) await new Promise<void>((r) => server!.close(() => r()));
      await queue;
    },
  };
}
