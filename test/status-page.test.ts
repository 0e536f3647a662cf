/**
 * The status page in a real browser: Debian's chromium, headless, driven by puppeteer-core over a pipe (no
 * browser download), against `portacluster serve` — the real watcher behind the generated nginx — in a
 * network namespace this test makes, with a 500-node spec. A node goes requested (the reimage command) →
 * start/download (real reports through nginx, as the installer's curl sends them) → a moving progress bar
 * (progress written into the state file the way the watcher records a node's progress report) → its log →
 * done (a real report: the watcher switches its link), each seen live in one page load. Then every node
 * changes at once, the figures are printed, and the watcher restarts under the open page.
 *
 * Screenshots go to .cache/status-page/; UPDATE_SCREENSHOT=1 also copies one to docs/status-page.png.
 */
// The callbacks below run in the page: the DOM's types for them.
/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
import { readRunRecord } from '../build/lifecycle/runs.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STATUS_PATH } from '../build/layout.ts';
import { run } from '../build/lib/run.ts';
import { updateState } from '../build/lifecycle/state.ts';
import type { Plan } from '../build/plan/plan.ts';
import { createNetns, type Netns } from './e2e/harness/netns.ts';
import { writeServedTree, writeSpec } from './helpers/served-tree.ts';

const REPO = resolve(import.meta.dirname, '..');
const ADMIN = '192.168.10.10';
const PAGE = `http://${ADMIN}${STATUS_PATH}/`;
const NODES = 500;
const ARTIFACTS = join(REPO, '.cache/status-page');
const CHROMIUM = '/usr/bin/chromium';

let dir: string;
let ns: Netns;
let plan: Plan;
let spec: string;
let serve: { child: ChildProcess; events: Record<string, any>[]; exit: Promise<number | null> };
let browser: Browser;
let page: Page;
const state = () => join(dir, 'state', 'state.json');
const figures: string[] = [];

function startServe(): typeof serve {
  const argv = ns.exec(['node', '--import', 'tsx', join(REPO, 'build/cli/main.ts'), 'serve', '--config', spec, '--root', join(dir, 'tree'), '--state', state(), '--run-dir', join(dir, 'run'), '--log-dir', join(dir, 'log'), '--interface', ns.bridge, '--no-upstream-dns', '--json']);
  const child = spawn(argv[0]!, argv.slice(1), { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
  const events: Record<string, any>[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => events.push(JSON.parse(l)));
  return { child, events, exit: new Promise((r) => child.once('close', r)) };
}

async function until<T>(what: string, fn: () => T | undefined | false, ms = 20_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A report exactly as the installer's report() sends it (curl GET), from inside the cluster network. */
/** The run's nonce, as the installer fetches it after `reimage` opened the run (a report counts only with it). */
let nonce = '';
const report = (phase: string, node = plan.nodes[0]!) => run(ns.exec(['curl', '-fsS', '-o', '/dev/null', '--', `http://${ADMIN}/portacluster/report/${phase}?host=${node.name}&mac=${node.mac}&nonce=${nonce}`]));

/** What a row shows, read from the DOM as a person (or a screen reader) would get it. */
const rowOf = (name: string) =>
  page.evaluate((n) => {
    const tr = [...document.querySelectorAll('#nodes tbody tr')].find((r) => r.querySelector('th')!.textContent === n)!;
    const bar = tr.querySelector('progress')!;
    const cell = (c: string) => tr.querySelector(`td.${c}`)!.textContent;
    return { state: cell('state'), phase: cell('phase'), profile: cell('profile'), progress: getComputedStyle(bar).display === 'none' ? null : bar.value, valuetext: bar.getAttribute('aria-valuetext'), text: cell('progress'), clock: cell('clock'), log: !(tr.querySelector('td.log a') as HTMLElement).hidden };
  }, name);

/** Waits for `pred` (an expression over the row's `tr`) as the page changes; a string, as the page's CSP allows no eval of its own. */
const waitRow = (name: string, pred: string, ms = 10_000) =>
  page.waitForFunction(`(() => { const tr = [...document.querySelectorAll('#nodes tbody tr')].find((r) => r.querySelector('th').textContent === ${JSON.stringify(name)}); return !!tr && (${pred}); })()`, { timeout: ms, polling: 'mutation' });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pc-status-page-'));
  await chmod(dir, 0o755);
  ({ file: spec, plan } = await writeSpec(dir, { count: NODES }));
  await writeServedTree(join(dir, 'tree'), plan);
  ns = await createNetns(`pc-status-${process.pid}`, `${ADMIN}/24`);
  serve = startServe();
  await until('serve up', () => serve.events.some((e) => e.event === 'up' && e.service === 'nginx'), 60_000);
  // The browser runs inside the namespace: a wrapper the driver starts, talking to it over a pipe.
  const wrapper = join(dir, 'chromium-in-netns');
  await writeFile(wrapper, `#!/bin/sh\nexec ${ns.exec([CHROMIUM]).join(' ')} "$@"\n`, { mode: 0o755 });
  browser = await puppeteer.launch({
    executablePath: wrapper,
    pipe: true,
    headless: true,
    // root in a container: no user namespaces for chromium's sandbox.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', `--user-data-dir=${join(dir, 'profile')}`],
    defaultViewport: { width: 1500, height: 900 },
  });
  page = await browser.newPage();
  await mkdir(ARTIFACTS, { recursive: true });
}, 120_000);

afterAll(async () => {
  if (figures.length) console.log(['status page figures:', ...figures].join('\n  '));
  const pid = browser?.process()?.pid;
  await browser?.close().catch(() => {});
  if (pid) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // closed
    }
  }
  if (serve?.child.exitCode === null) {
    serve.child.kill('SIGTERM');
    await serve.exit;
  }
  await ns?.stop();
  await rm(dir, { recursive: true, force: true });
}, 60_000);

describe('the status page, live in chromium behind nginx', () => {
  it(`renders ${NODES} nodes as an accessible table`, async () => {
    const t0 = Date.now();
    await page.goto(PAGE);
    await page.waitForFunction((n) => document.querySelectorAll('#nodes tbody tr').length === n && document.body.dataset.snapshots === '1', {}, NODES);
    const loaded = Date.now() - t0;
    await page.waitForFunction(() => (window as any).statusPerf.firstDrawnMs !== null);
    const perf = await page.evaluate(() => (window as any).statusPerf);
    figures.push(`first render of ${NODES} rows: ${perf.firstRenderMs.toFixed(1)} ms of script, ${perf.firstDrawnMs.toFixed(1)} ms until laid out and painted; navigation to ${NODES} rows in the DOM: ${loaded} ms`);
    expect(await page.evaluate(() => document.querySelector('#summary')!.textContent)).toBe(`${NODES} nodes · 0 installing · 0 requested · 0 done · 0 failed · 0 timed out · ${NODES} idle`);
    // Real table markup: a caption, column headers and a row header per node.
    const a11y = await page.evaluate(() => ({
      caption: !!document.querySelector('table > caption')?.textContent,
      cols: [...document.querySelectorAll('thead th')].every((th) => th.getAttribute('scope') === 'col'),
      rows: [...document.querySelectorAll('tbody th')].every((th) => th.getAttribute('scope') === 'row'),
    }));
    expect(a11y).toEqual({ caption: true, cols: true, rows: true });
    expect(await rowOf('node1')).toMatchObject({ state: '—', profile: 'installer', progress: null, log: false });
    // No bar is drawn for a node that is not downloading (an indeterminate one would animate 500 times over).
    expect(await page.evaluate(() => [...document.querySelectorAll('#nodes progress')].filter((p) => getComputedStyle(p).display !== 'none').length)).toBe(0);
    // A marker that a reload would lose: everything below happens in this one page load.
    await page.evaluate(() => ((window as any).sameLoad = true));
  });

  it('follows a node from requested through a moving download bar to done, without a reload', async () => {
    const node = plan.nodes[0]!;
    await run(['node', join(REPO, 'bin/portacluster.js'), 'reimage', node.name, '--config', spec, '--root', join(dir, 'tree'), '--state', state()]);
    nonce = (await readRunRecord(state(), node.name))!.nonce;
    await waitRow('node1', "tr.querySelector('td.state').textContent === 'requested'");
    await report('start');
    await report('download');
    await waitRow('node1', "tr.querySelector('td.phase').textContent === 'download'");
    const total = 1536 * 1024 ** 2;
    const seen: (number | null)[] = [];
    for (const part of [0.1, 0.5, 0.9]) {
      // The state the watcher writes when a node reports its download progress (bytes, total, rate).
      await updateState(state(), (d) => {
        d.nodes.node1!.progress = { bytes: Math.round(total * part), total, rateBps: 64 * 1024 ** 2, at: new Date().toISOString() };
        d.nodes.node1!.tries = 1;
      });
      await waitRow('node1', `tr.querySelector('progress').value === ${part * 100}`);
      const r = await rowOf('node1');
      seen.push(r.progress);
      expect(r.valuetext).toMatch(new RegExp(`^${part * 100} %, .* / 1\\.5 GiB · 64 MiB/s · ETA \\d+:\\d\\d$`));
      if (part === 0.5) {
        await decorate();
        await page.screenshot({ path: join(ARTIFACTS, 'status-page.png') });
        if (process.env.UPDATE_SCREENSHOT === '1') await copyFile(join(ARTIFACTS, 'status-page.png'), join(REPO, 'docs/status-page.png'));
      }
    }
    expect(seen).toEqual([10, 50, 90]);
    expect(await page.evaluate(() => document.querySelector('#summary')!.textContent)).toMatch(/ 1 installing · 1 requested · 1 done · 1 failed · 1 timed out · /);

    // The installer's log (POSTed as report_post does), then done: the watcher switches the link to the OS.
    const logFile = join(dir, 'install.log');
    await writeFile(logFile, 'phase download\nphase done\n');
    await run(ns.exec(['curl', '-fsS', '-o', '/dev/null', '-H', 'Content-Type: text/plain', '--data-binary', `@${logFile}`, '--', `http://${ADMIN}/portacluster/report/log?host=node1&mac=${node.mac}&nonce=${nonce}`]));
    await waitRow('node1', "!tr.querySelector('td.log a').hidden");
    await report('done');
    await waitRow('node1', `tr.querySelector('td.state').textContent === 'done' && tr.querySelector('td.profile').textContent === '${plan.profiles.os} (OS)'`);
    expect(await rowOf('node1')).toMatchObject({ state: 'done', phase: 'done', profile: `${plan.profiles.os} (OS)`, progress: null, log: true });
    expect(await page.evaluate(() => (window as any).sameLoad)).toBe(true);

    // The log link serves that node's stored log through nginx; a name is all it takes, never a path.
    const href = await page.evaluate(() => (document.querySelector('#nodes tbody tr td.log a') as HTMLAnchorElement).href);
    expect(href).toBe(`${PAGE}log/node1`);
    expect((await run(ns.exec(['curl', '-fsS', href]))).stdout).toBe('phase download\nphase done\n');
    const code = async (...args: string[]) => (await run(ns.exec(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', ...args]), { nothrow: true })).stdout;
    expect(await code(`${PAGE}log/node2`)).toBe('404');
    expect(await code('--path-as-is', `${PAGE}log/..%2F..%2Fstate.json`)).toBe('404');
    // Read-only: nginx lets GET and HEAD through and nothing else.
    expect(await code('-X', 'POST', `${PAGE}events`)).toBe('403');
    expect(await code('-I', PAGE)).toBe('200');
  });

  it(`applies a change to all ${NODES} nodes in one go`, async () => {
    for (const round of [1, 2, 3]) {
      const t0 = Date.now();
      await updateState(state(), (d) => {
        const at = new Date().toISOString();
        for (const n of plan.nodes.slice(1)) {
          d.nodes[n.name] = { name: n.name, mac: n.mac, phase: 'download', state: 'installing', since: at, updated: at, history: [], progress: { bytes: round * 100 * 1024 ** 2, total: 400 * 1024 ** 2, rateBps: 10 * 1024 ** 2, at } };
        }
      });
      await page.waitForFunction((v, n) => [...document.querySelectorAll('#nodes tbody progress')].filter((p) => getComputedStyle(p).display !== 'none' && (p as HTMLProgressElement).value === v).length === n, { timeout: 20_000 }, round * 25, NODES - 1);
      const ms = Date.now() - t0;
      await page.waitForFunction(() => (window as any).statusPerf.lastBatch.drawnMs !== null);
      const perf = await page.evaluate(() => (window as any).statusPerf.lastBatch);
      figures.push(`round ${round}: ${NODES - 1} nodes changed in the state file → all in the DOM: ${ms} ms end to end; applying the ${perf.rows} rows: ${perf.ms.toFixed(1)} ms of script, ${perf.drawnMs.toFixed(1)} ms from their arrival to painted`);
      expect(perf.rows).toBe(NODES - 1);
    }
    // The clocks of 500 reporting nodes, ticking once a second.
    await page.waitForFunction(() => (window as any).statusPerf.lastTickMs !== null);
    await new Promise((r) => setTimeout(r, 1100));
    figures.push(`the once-a-second clock tick over ${NODES} rows: ${(await page.evaluate(() => (window as any).statusPerf.lastTickMs)).toFixed(1)} ms of script`);
    expect(await page.evaluate(() => document.querySelector('#summary')!.textContent)).toBe(`${NODES} nodes · ${NODES - 1} installing · 0 requested · 1 done · 0 failed · 0 timed out · 0 idle`);
    await page.screenshot({ path: join(ARTIFACTS, `status-page-${NODES}.png`) });
  });

  it('comes back by itself when the watcher restarts, with what changed while it was away', async () => {
    serve.child.kill('SIGTERM');
    expect(await serve.exit).toBe(0);
    await page.waitForFunction(() => document.getElementById('connection')!.dataset.conn === 'lost');
    await updateState(state(), (d) => {
      Object.assign(d.nodes.node2!, { state: 'failed', phase: 'extract', detail: 'tar: short read', progress: undefined });
    });
    serve = startServe();
    await waitRow('node2', "tr.querySelector('td.state').textContent === 'failed'", 30_000);
    expect(await page.evaluate(() => document.getElementById('connection')!.dataset.conn)).toBe('live');
    expect(await rowOf('node2')).toMatchObject({ state: 'failed', phase: 'extracttar: short read', progress: null });
    expect(await page.evaluate(() => [(window as any).sameLoad, document.body.dataset.snapshots])).toEqual([true, '2']);
  }, 60_000);
});

/** A few other states for the screenshot: a done node, a failed one, a timed-out one, a parked one, one overdue. */
async function decorate(): Promise<void> {
  const ago = (s: number) => new Date(Date.now() - s * 1000).toISOString();
  await updateState(state(), (d) => {
    const put = (i: number, s: Record<string, unknown>) => {
      const n = plan.nodes[i]!;
      d.nodes[n.name] = { name: n.name, mac: n.mac, history: [], since: ago(600), updated: ago(30), phase: 'start', state: 'requested', ...s } as any;
    };
    put(1, { state: 'done', phase: 'done', tries: 1, log: join(dir, 'state/logs/none.log') });
    put(2, { state: 'failed', phase: 'partition', detail: 'no disk of 8 GiB or more matched the spec', tries: 2 });
    put(3, { state: 'timed-out', phase: 'extract', detail: 'no report for 1800 s (last: extract)', tries: 3, parked: 'powered off after 3 tries' });
    put(4, { state: 'requested', phase: 'requested', tries: 1, phaseStarted: ago(400), deadline: ago(100) });
  });
  await waitRow('node5', "tr.querySelector('td.clock').textContent.endsWith('(overdue)')");
}
