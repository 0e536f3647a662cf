/**
 * The watcher's live status page under STATUS_PATH (nginx proxies it, GET/HEAD only):
 *
 *   <STATUS_PATH>/            the page: static HTML, filled in by status.js from the event stream
 *   <STATUS_PATH>/status.js   the page's script (build/lifecycle/status-assets/, plain JS, no build step)
 *   <STATUS_PATH>/status.css  its style sheet
 *   <STATUS_PATH>/events      server-sent events: `snapshot` (every row) on each connect, then `rows`
 *                             (only the rows that changed) — so a browser that reconnects after the
 *                             watcher restarted is whole again at once, with no Last-Event-ID bookkeeping
 *   <STATUS_PATH>/rows.json   the same snapshot once, for scripts
 *   <STATUS_PATH>/log/<node>  the node's last stored install log, by node name (never by path)
 *
 * Nothing here writes: the page shows the state file and the links (status-feed.ts follows both). Every
 * value reaches the page as JSON and is put in with textContent, so a spec or a log cannot inject markup;
 * the Content-Security-Policy allows this origin's script and style only.
 */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, join, relative, resolve } from 'node:path';
import { PXELINUX_DIR, STATUS_PATH } from '../layout.ts';
import { insideDir } from '../lib/inside-dir.ts';
import { readProfiles } from './links.ts';
import { readState } from './state.ts';
import { followStatus, type Feed } from './status-feed.ts';
import { summarize, type StatusNode, type StatusRow } from './status-rows.ts';
import type { Target } from './target.ts';

export interface StatusPageOptions {
  nodes: readonly StatusNode[];
  /** The OS profile's name: the page marks a node whose link points there as booting its OS. */
  osProfile?: string;
  root: string;
  target?: Target;
  stateFile: string;
  /** The feed's slow poll (ms). */
  pollMs?: number;
  /** A comment line on idle streams this often, so proxies keep them open (ms). */
  keepaliveMs?: number;
}

export interface StatusPage {
  /** true: the request was the page's (answered or being streamed); false: not under STATUS_PATH. */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  /** Open event streams. */
  clients(): number;
  /** Ends every event stream (an HTTP server's close() waits for open responses) and stops the feed. */
  close(): void;
}

const ASSETS = new URL('./status-assets/', import.meta.url);
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};
const ASSET_TYPES: Record<string, string> = { 'status.js': 'text/javascript; charset=utf-8', 'status.css': 'text/css; charset=utf-8', 'index.html': 'text/html; charset=utf-8' };

/** Where the page's routes start and what is after them; null: not a status path. */
export function statusRoute(url: string): string | null {
  const path = new URL(url, 'http://watcher').pathname;
  if (path === STATUS_PATH) return '';
  return path.startsWith(`${STATUS_PATH}/`) ? path.slice(STATUS_PATH.length) : null;
}

export function createStatusPage(o: StatusPageOptions): StatusPage {
  const streams = new Set<ServerResponse>();
  let eventId = 0;
  const assets = new Map<string, Promise<Buffer>>();
  const asset = (name: string) => {
    if (!assets.has(name)) assets.set(name, readFile(new URL(name, ASSETS)));
    return assets.get(name)!;
  };
  const local = !o.target?.host;
  const feed: Feed = followStatus({
    nodes: o.nodes,
    stateFile: o.stateFile,
    readLinks: () => readProfiles(o.nodes, { root: o.root, ...(o.target ? { target: o.target } : {}) }),
    // A deploy swaps the tree under a watched directory: the slow poll reads the links again regardless.
    ...(local ? { linkDirs: [join(o.root, PXELINUX_DIR)] } : {}),
    // Links over ssh cost a connection per read: poll them less often.
    pollMs: o.pollMs ?? (local ? 2000 : 10_000),
    minGapMs: 250,
    onChange: (rows, changed) => {
      if (streams.size) broadcast('rows', payload(rows, changed));
    },
  });

  const payload = (all: readonly StatusRow[], rows: readonly StatusRow[]) => ({ now: new Date().toISOString(), osProfile: o.osProfile ?? null, summary: summarize(all), rows });

  function send(res: ServerResponse, event: string, data: unknown): void {
    res.write(`id: ${++eventId}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }
  function broadcast(event: string, data: unknown): void {
    for (const res of streams) send(res, event, data);
  }
  const keepalive = setInterval(() => {
    for (const res of streams) res.write(': keepalive\n\n');
  }, o.keepaliveMs ?? 15_000);

  function reply(res: ServerResponse, status: number, type: string, body: string | Buffer, head: boolean, extra: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...SECURITY_HEADERS, ...extra });
    res.end(head ? undefined : body);
  }
  const text = (res: ServerResponse, status: number, msg: string, head: boolean, extra: Record<string, string> = {}) => reply(res, status, 'text/plain; charset=utf-8', msg + '\n', head, extra);

  async function events(req: IncomingMessage, res: ServerResponse, head: boolean): Promise<void> {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // nginx buffers proxied responses; an event must go out when it happens.
      'x-accel-buffering': 'no',
      ...SECURITY_HEADERS,
    });
    if (head) return void res.end();
    // The browser retries 2 s after the stream ends (a watcher restart) and gets a fresh snapshot.
    res.write('retry: 2000\n\n');
    streams.add(res);
    req.on('close', () => streams.delete(res));
    await feed.ready;
    if (streams.has(res)) send(res, 'snapshot', payload(feed.rows(), feed.rows()));
  }

  async function log(res: ServerResponse, name: string, head: boolean): Promise<void> {
    const node = o.nodes.find((n) => n.name === name);
    const file = node ? (await readState(o.stateFile)).nodes[node.name]?.log : undefined;
    if (!node || !file) return text(res, 404, node ? `no install log stored for ${node.name}` : 'no such node', head);
    // Only a file in the state's logs/ directory, whatever the state file says.
    const logs = resolve(dirname(o.stateFile), 'logs');
    let path: string;
    try {
      path = insideDir(logs, relative(logs, resolve(file)), 'status');
    } catch {
      return text(res, 404, `the stored log of ${node.name} is not in ${logs}`, head);
    }
    const st = await stat(path).catch(() => null);
    if (!st?.isFile()) return text(res, 404, `the stored log of ${node.name} is gone`, head);
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': st.size, 'cache-control': 'no-store', ...SECURITY_HEADERS });
    if (head) return void res.end();
    createReadStream(path).on('error', () => res.destroy()).pipe(res);
  }

  async function route(req: IncomingMessage, res: ServerResponse, rest: string): Promise<void> {
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) return text(res, 405, 'the status page is read-only', false, { allow: 'GET, HEAD' });
    if (rest === '') return reply(res, 301, 'text/plain; charset=utf-8', '', head, { location: `${STATUS_PATH}/` });
    if (rest === '/') return reply(res, 200, ASSET_TYPES['index.html']!, await asset('index.html'), head);
    const file = /^\/(status\.(?:js|css))$/.exec(rest)?.[1];
    if (file) return reply(res, 200, ASSET_TYPES[file]!, await asset(file), head);
    if (rest === '/events') return events(req, res, head);
    if (rest === '/rows.json') {
      await feed.refresh();
      return reply(res, 200, 'application/json', JSON.stringify(payload(feed.rows(), feed.rows())) + '\n', head);
    }
    const m = /^\/log\/([^/]+)$/.exec(rest);
    if (m) {
      let name: string;
      try {
        name = decodeURIComponent(m[1]!);
      } catch {
        return text(res, 404, 'no such node', head);
      }
      return log(res, name, head);
    }
    return text(res, 404, `no such page under ${STATUS_PATH}/`, head);
  }

  return {
    handle(req, res) {
      const rest = statusRoute(req.url ?? '/');
      if (rest === null) return false;
      route(req, res, rest).catch((e: Error) => {
        if (!res.headersSent) text(res, 500, e.message, false);
        else res.destroy();
      });
      return true;
    },
    clients: () => streams.size,
    close() {
      clearInterval(keepalive);
      feed.close();
      for (const res of streams) res.end();
      streams.clear();
    },
  };
}
