/**
 * The status page's HTTP side on the real watcher (in this process, on a loopback port, no nginx): the
 * routes, read-only, the headers that keep a spec or a log from injecting anything, the event stream's
 * snapshot-then-changes, the log by node name only, and a watcher that still closes at once with browsers
 * connected. The browser and nginx are status-page.test.ts's.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STATUS_PATH } from '../build/layout.ts';
import { switchNodes } from '../build/lifecycle/links.ts';
import { updateState } from '../build/lifecycle/state.ts';
import { readRunRecord, startRuns } from '../build/lifecycle/runs.ts';
import { startWatcher, type Watcher } from '../build/lifecycle/watch.ts';
import type { Plan } from '../build/plan/plan.ts';
import { problems } from './fixtures/specs.ts';
import { writeServedTree, writeSpec } from './helpers/served-tree.ts';
import { workspace } from './helpers/workspace.ts';

let ws: Awaited<ReturnType<typeof workspace>>;
let plan: Plan;
let watcher: Watcher;
let base: string;
let stateFile: string;

beforeAll(async () => {
  ws = await workspace('pc-status-http-');
  plan = (await writeSpec(ws.dir, { count: 2 })).plan;
  await writeServedTree(join(ws.dir, 'tree'), plan);
  stateFile = join(ws.dir, 'state', 'state.json');
  await mkdir(join(ws.dir, 'state'));
  watcher = await startWatcher({ plan, root: join(ws.dir, 'tree'), stateFile, listen: { host: '127.0.0.1', port: 0 }, timeoutMs: 600_000, onEvent: () => {} });
  base = `http://127.0.0.1:${watcher.address!.port}${STATUS_PATH}`;
});
afterAll(async () => {
  await watcher?.close();
  await ws.cleanup();
});

type Ev = { event: string; data: any };
/** An event stream's reader: read(until) collects events until `until` holds for all so far (or the stream ends). */
function eventStream(res: Response): { read: (until: (events: Ev[]) => boolean) => Promise<Ev[]>; cancel: () => Promise<void> } {
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = '';
  const events: Ev[] = [];
  return {
    async read(until) {
      while (!until(events)) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value);
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event && data) events.push({ event, data: JSON.parse(data) });
        }
      }
      return events;
    },
    cancel: () => reader.cancel(),
  };
}

/** Opens a run for the node, as reimage does, and returns the nonce its installer would fetch. */
async function nonceOf(i: number): Promise<string> {
  const n = plan.nodes[i]!;
  await startRuns({ stateFile, root: join(ws.dir, 'tree'), nodes: [n], action: 'reimage', profile: 'installer', requestedMinutes: plan.phoneHome.deadlines.requested });
  return (await readRunRecord(stateFile, n.name))!.nonce;
}

describe('the status page routes on the watcher', () => {
  it('serves the page and its two files with a strict policy; everything else is 404, 405 or a redirect', async () => {
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'none'; script-src 'self'/);
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    const html = await page.text();
    expect(html).toMatch(/<table id="nodes">\s*<caption>/);
    expect(html).toContain('<script src="status.js" defer></script>');
    expect((await fetch(`${base}/status.js`)).headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect((await fetch(`${base}/status.css`)).headers.get('content-type')).toBe('text/css; charset=utf-8');
    const bare = await fetch(base, { redirect: 'manual' });
    expect([bare.status, bare.headers.get('location')]).toEqual([301, `${STATUS_PATH}/`]);
    expect((await fetch(`${base}/status.js.map`)).status).toBe(404);
    const post = await fetch(`${base}/events`, { method: 'POST', body: 'x' });
    expect([post.status, post.headers.get('allow')]).toEqual([405, 'GET, HEAD']);
    const head = await fetch(`${base}/events`, { method: 'HEAD' });
    expect([head.status, head.headers.get('content-type')]).toEqual([200, 'text/event-stream; charset=utf-8']);
    // The reports still reach the watcher beside the page (a report counts for a node's open run, with its nonce).
    expect((await fetch(`http://127.0.0.1:${watcher.address!.port}${plan.phoneHome.path}/start?mac=${plan.nodes[1]!.mac}&nonce=${await nonceOf(1)}`)).status).toBe(200);
  });

  it('streams a snapshot on connect, then only the rows that changed', async () => {
    const res = await fetch(`${base}/events`);
    expect(res.headers.get('x-accel-buffering')).toBe('no');
    const stream = eventStream(res);
    const first = [...(await stream.read((e) => e.length >= 1))];
    expect(first[0]!.event).toBe('snapshot');
    expect(first[0]!.data.rows.map((r: { name: string }) => r.name)).toEqual(['node1', 'node2']);
    await nonceOf(0); // reimage node1: a run opened, the node requested
    const more = await stream.read((e) => e.some((x) => x.event === 'rows' && x.data.rows.some((r: any) => r.name === 'node1' && r.state === 'requested')));
    expect(more.at(-1)!.data.summary).toMatchObject({ nodes: 2, requested: 1, installing: 1 });
    // Once settled, a change to one node sends that node's row alone.
    const seen = more.length;
    await updateState(stateFile, (d) => void (d.nodes.node1!.tries = 2));
    const after = await stream.read((e) => e.length > seen);
    expect(after.slice(seen).map((e) => [e.event, e.data.rows.map((r: { name: string; tries: number }) => `${r.name}:${r.tries}`)])).toEqual([['rows', ['node1:2']]]);
    // A link switched with no state change (by hand, or a deploy) shows long before the slow poll (2 s).
    const t0 = Date.now();
    await switchNodes([plan.nodes[1]!], plan.profiles.rescue, { root: join(ws.dir, 'tree') });
    const switched = await stream.read((e) => e.length > seen + 1);
    expect(switched.at(-1)!.data.rows.map((r: { name: string; profile: string }) => `${r.name}:${r.profile}`)).toEqual(['node2:rescue']);
    expect(Date.now() - t0).toBeLessThan(1000);
    await stream.cancel();
  });

  it('serves a stored log by node name only, never a path the state file names outside logs/', async () => {
    const body = Buffer.from('line 1\n<script>alert(1)</script>\n');
    const r = await fetch(`http://127.0.0.1:${watcher.address!.port}${plan.phoneHome.path}/log?mac=${plan.nodes[0]!.mac}&nonce=${await nonceOf(0)}`, { method: 'POST', body });
    expect(r.status).toBe(200);
    const log = await fetch(`${base}/log/node1`);
    expect([log.status, log.headers.get('content-type'), log.headers.get('x-content-type-options')]).toEqual([200, 'text/plain; charset=utf-8', 'nosniff']);
    expect(Buffer.from(await log.arrayBuffer())).toEqual(body);
    expect((await fetch(`${base}/log/node2`)).status).toBe(404);
    expect((await fetch(`${base}/log/nosuch`)).status).toBe(404);
    expect((await fetch(`${base}/log/%E0%A4%A`)).status).toBe(404);
    // A state file that names a file elsewhere (edited by hand, or a bug) does not make the page serve it.
    await writeFile(join(ws.dir, 'secret.txt'), 'secret\n');
    await updateState(stateFile, (d) => void (d.nodes.node1!.log = join(ws.dir, 'state', 'logs', '..', '..', 'secret.txt')));
    const escaped = await fetch(`${base}/log/node1`);
    expect(escaped.status).toBe(404);
    expect(await escaped.text()).not.toContain('secret');
  });

  it('closes at once with event streams open', async () => {
    const w = await startWatcher({ plan, root: join(ws.dir, 'tree'), stateFile, listen: { host: '127.0.0.1', port: 0 }, timeoutMs: 600_000, onEvent: () => {} });
    const streams = await Promise.all([1, 2, 3].map(() => fetch(`http://127.0.0.1:${w.address!.port}${STATUS_PATH}/events`)));
    const readers = streams.map(eventStream);
    await Promise.all(readers.map((r) => r.read((e) => e.length >= 1)));
    const t0 = Date.now();
    await w.close();
    expect(Date.now() - t0).toBeLessThan(1000);
    // Each browser sees its stream end (and reconnects to the next watcher by itself).
    // (The watcher's first deadline check may have changed a row before the close: a `rows` event then.)
    for (const r of readers) {
      const events = (await r.read(() => false)).map((e) => e.event);
      expect(events).toContain('snapshot');
      expect(events.filter((e) => e !== 'snapshot' && e !== 'rows')).toEqual([]);
    }
  });

  it('the spec keeps phoneHome.path off the status page', () => {
    expect(problems((s) => (s.phoneHome = { path: STATUS_PATH }))).toEqual([`phoneHome.path: ${STATUS_PATH} is the status page's (${STATUS_PATH}) | hint: keep the default /portacluster/report, or any path outside the status page`]);
    expect(problems((s) => (s.phoneHome = { path: `${STATUS_PATH}/x` }))).toHaveLength(1);
    expect(problems((s) => (s.phoneHome = { path: '/portacluster' }))).toEqual([]);
  });
});
