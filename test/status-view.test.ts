/**
 * The status views without a browser: the pure rows (plan + state + links → rows), the terminal renderer,
 * and `portacluster status --watch` for real — in a pipe (a line per change) and in a pseudo-terminal made
 * by util-linux `script` (redrawn in place, ended by a real Ctrl-C typed into the terminal).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { markSwitched, updateState, type StateDoc } from '../build/lifecycle/state.ts';
import { changedRows, phaseClock, progressText, statusRows, summarize, summaryLine } from '../build/lifecycle/status-rows.ts';
import { changeLine, progressCell, screen } from '../build/cli/status-view.ts';
import type { Plan } from '../build/plan/plan.ts';
import { writeServedTree, writeSpec } from './helpers/served-tree.ts';
import { workspace } from './helpers/workspace.ts';

const BIN = resolve('bin/portacluster.js');
const T0 = Date.parse('2026-01-01T10:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();

function doc(): StateDoc {
  return {
    version: 1,
    nodes: {
      node1: {
        name: 'node1', mac: 'c0:3f:d5:60:00:01', phase: 'download', state: 'installing', since: iso(T0), updated: iso(T0 + 30_000), history: [],
        phaseStarted: iso(T0 + 10_000), deadline: iso(T0 + 70_000), tries: 2, run: 'r7',
        progress: { bytes: 1024 ** 3, total: 4 * 1024 ** 3, rateBps: 100 * 1024 ** 2, at: iso(T0 + 30_000) },
      },
      node2: { name: 'node2', mac: 'c0:3f:d5:60:00:02', phase: 'partition', state: 'failed', since: iso(T0), updated: iso(T0), history: [], detail: 'sgdisk: bad\nno disk matched', log: '/x/logs/node2.log' },
    },
  };
}

describe('rows from plan + state + links', () => {
  let plan: Plan;
  beforeAll(async () => {
    const ws = await workspace('pc-rows-');
    plan = (await writeSpec(ws.dir, { count: 3 })).plan;
    await ws.cleanup();
  });

  it('one row per node of the plan, with the link, the download and the summary', () => {
    const rows = statusRows(plan.nodes, doc(), new Map([['node1', 'installer'], ['node2', 'installer']]));
    expect(rows.map((r) => [r.name, r.profile, r.state, r.phase, r.tries, r.log])).toEqual([
      ['node1', 'installer', 'installing', 'download', 2, false],
      ['node2', 'installer', 'failed', 'partition', null, true],
      ['node3', null, null, null, null, false],
    ]);
    expect(rows[0]!.progress).toMatchObject({ percent: 25, etaS: 31, text: '1.0 GiB / 4.0 GiB · 100 MiB/s · ETA 0:31' });
    expect(rows[1]!.detail).toBe('no disk matched');
    expect(rows[1]!.phaseStarted).toBe(iso(T0));
    expect(summaryLine(summarize(rows))).toBe('3 nodes: 1 installing, 0 requested, 0 done, 1 failed, 0 timed out, 1 idle');
  });

  it('shows progress only while the node downloads, and marks a phase past its deadline', () => {
    const d = doc();
    d.nodes.node1!.phase = 'extract';
    expect(statusRows(plan.nodes, d, new Map())[0]!.progress).toBeNull();
    const [r] = statusRows(plan.nodes, doc(), new Map());
    expect(phaseClock(r!, T0 + 60_000)).toEqual({ seconds: 50, overdue: false });
    expect(phaseClock(r!, T0 + 71_000)).toEqual({ seconds: 61, overdue: true });
    // A finished node is never overdue, whatever deadline it kept.
    expect(phaseClock({ ...r!, state: 'done' }, T0 + 71_000).overdue).toBe(false);
    expect(progressText({ bytes: 5, total: 0, rateBps: 0, at: '', percent: null, etaS: null })).toBe('5 B · 0 B/s · ETA ?');
  });

  it('changedRows names only the rows that differ', () => {
    const a = statusRows(plan.nodes, doc(), new Map());
    const d = doc();
    d.nodes.node1!.progress!.bytes += 1;
    const b = statusRows(plan.nodes, d, new Map());
    expect(changedRows(new Map(a.map((r) => [r.name, r])), b).map((r) => r.name)).toEqual(['node1']);
    expect(changedRows(new Map(), b)).toHaveLength(3);
  });

  it('the terminal screen: a progress bar, OVERDUE in words, cut to the width, busy nodes first when short', () => {
    const rows = statusRows(plan.nodes, doc(), new Map([['node1', 'installer']]));
    expect(progressCell(rows[0]!, 8)).toBe('[##......]  25.0% 1.0 GiB / 4.0 GiB · 100 MiB/s · ETA 0:31');
    const big = screen(rows, summarize(rows), { now: T0 + 71_000, width: 300, height: 40, title: 'T' });
    expect(big[0]).toBe('T');
    expect(big[3]).toMatch(/^NODE\s+MAC\s+IP\s+BOOT\s+PROFILE\s+STATE\s+PHASE\s+DOWNLOAD\s+IN PHASE\s+REPORT\s+TRIES$/);
    expect(big[4]).toMatch(/^node1 .* installing +download +\[####\.{10}\] +25\.0% .* 1:01 OVERDUE +41s ago +2$/);
    expect(big[5]).toMatch(/^node2 .* FAILED +partition /);
    const small = screen(rows, summarize(rows), { now: T0, width: 40, height: 7, title: 'T' });
    expect(small.every((l) => l.length <= 40)).toBe(true);
    // Room for 2 table lines: the header and the busiest node; the rest is counted.
    expect(small.slice(3).map((l) => l.split(/\s+/)[0])).toEqual(['NODE', 'node1', '…']);
    expect(small.at(-1)).toMatch(/^… 2 more nodes/);
    expect(changeLine(rows[1]!, T0)).toBe('2026-01-01T10:00:00Z node2      FAILED     partition no link (no disk matched)');
  });
});

/** The CLI with its output collected; `pty` runs it inside `script`, a real pseudo-terminal. */
function startCli(args: string[], o: { pty?: boolean } = {}): { child: ChildProcess; out: () => string; waitFor: (re: RegExp, ms?: number) => Promise<void>; exit: Promise<number | null> } {
  const argv = [process.execPath, BIN, ...args];
  const child = o.pty
    ? spawn('script', ['-qfec', `stty cols 160 rows 30; exec ${argv.map((a) => `'${a}'`).join(' ')}`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] })
    : spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b) => (out += b));
  child.stderr!.on('data', (b) => (out += b));
  const exit = new Promise<number | null>((r) => child.once('close', (c) => r(c)));
  return {
    child,
    out: () => out,
    exit,
    waitFor: (re, ms = 15_000) =>
      new Promise((res, rej) => {
        const t0 = Date.now();
        const tick = () => (re.test(out) ? res() : Date.now() - t0 > ms ? rej(new Error(`no ${re} in:\n${out}`)) : setTimeout(tick, 50));
        tick();
      }),
  };
}

describe('portacluster status --watch', () => {
  let ws: Awaited<ReturnType<typeof workspace>>;
  let spec: string;
  let plan: Plan;
  let root: string;
  const running: ChildProcess[] = [];

  beforeAll(async () => {
    ws = await workspace('pc-status-watch-');
    ({ file: spec, plan } = await writeSpec(ws.dir, { count: 2 }));
    root = join(ws.dir, 'tree');
    await mkdir(root);
    await writeServedTree(root, plan);
  });
  afterAll(async () => {
    for (const c of running) if (c.exitCode === null) c.kill('SIGKILL');
    await ws.cleanup();
  });

  async function progress(state: string, bytes: number) {
    await updateState(state, (d) => {
      const n = d.nodes.node1!;
      Object.assign(n, { state: 'installing', phase: 'download', updated: new Date().toISOString(), progress: { bytes, total: 400 * 1024 ** 2, rateBps: 20 * 1024 ** 2, at: new Date().toISOString() } });
    });
  }

  it('in a pipe: every node once, then one plain line per change; Ctrl-C ends it with 0', async () => {
    const state = join(ws.dir, 'pipe', 'state.json');
    const cli = startCli(['status', '--watch', '--config', spec, '--root', root, '--state', state]);
    running.push(cli.child);
    await cli.waitFor(/node2 .*\n-- 2 nodes: 0 installing, 0 requested, 0 done, 0 failed, 0 timed out, 2 idle\n/);
    expect(cli.out()).toMatch(/^\S+Z node1 +- +- +link installer\n\S+Z node2 +- +- +link installer\n/);
    await markSwitched(state, [plan.nodes[0]!], 'reimage', 'installer');
    await cli.waitFor(/node1 +requested +requested +link installer try 1\n-- 2 nodes: 0 installing, 1 requested/);
    await progress(state, 100 * 1024 ** 2);
    await cli.waitFor(/node1 +installing +download +\[###\.+\] +25\.0% 100 MiB \/ 400 MiB · 20 MiB\/s · ETA 0:15 link installer try 1\n/);
    await progress(state, 300 * 1024 ** 2);
    await cli.waitFor(/75\.0% 300 MiB \/ 400 MiB/);
    const lines = cli.out().trimEnd().split('\n');
    // No escape sequences in a pipe, and no redraws: a line per change.
    expect(cli.out()).not.toMatch(/\x1b/);
    expect(lines.filter((l) => l.includes(' node1 '))).toHaveLength(4);
    cli.child.kill('SIGINT');
    expect(await cli.exit).toBe(0);
  });

  it('with --json: a snapshot document, then a change document per change', async () => {
    const state = join(ws.dir, 'json', 'state.json');
    const cli = startCli(['status', '--watch', '--json', '--config', spec, '--root', root, '--state', state]);
    running.push(cli.child);
    await cli.waitFor(/"event":"snapshot"/);
    await markSwitched(state, [plan.nodes[0]!], 'reimage', 'installer');
    await progress(state, 1024);
    await cli.waitFor(/"event":"change"/);
    cli.child.kill('SIGINT');
    expect(await cli.exit).toBe(0);
    const docs = cli.out().trim().split('\n').map((l) => JSON.parse(l));
    expect(docs[0]).toMatchObject({ event: 'snapshot', nodes: [{ name: 'node1', state: null }, { name: 'node2' }] });
    expect(docs.at(-1)).toMatchObject({ event: 'change', node: { name: 'node1', state: 'installing', progress: { bytes: 1024 } } });
    expect(docs.slice(1).every((d) => d.event === 'change' && d.node.name === 'node1')).toBe(true);
  });

  it('on a terminal: redrawn in place with a progress bar; Ctrl-C typed into it restores the cursor and exits 0', async () => {
    const state = join(ws.dir, 'tty', 'state.json');
    await markSwitched(state, [plan.nodes[0]!], 'reimage', 'installer');
    const cli = startCli(['status', '--watch', '--config', spec, '--root', root, '--state', state], { pty: true });
    running.push(cli.child);
    await cli.waitFor(/node1 .*requested/);
    await progress(state, 200 * 1024 ** 2);
    await cli.waitFor(/\[#######\.+\] +50\.0% 200 MiB \/ 400 MiB/);
    const out = cli.out();
    expect(out).toContain('\x1b[?25l'); // cursor hidden while redrawing
    expect(out.split('\x1b[H').length).toBeGreaterThan(2); // more than one redraw, each from the top
    expect(out).toMatch(/2 nodes: 1 installing, 0 requested/);
    cli.child.stdin!.write('\x03');
    expect(await cli.exit).toBe(0);
    expect(cli.out().slice(out.length)).toContain('\x1b[?25h');
  });
});
