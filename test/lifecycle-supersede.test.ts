/**
 * What node0 keeps through the fault campaign's faults (test/e2e/faults.test.ts), in the fast tier: a run
 * superseded while open is recorded with the phase it was in; a serve that died leaves services that the
 * next serve of the same run dir stops (and only those).
 */
import { spawn } from 'node:child_process';
import { readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pidAlive } from '../build/lib/process.ts';
import { stopStaleServices } from '../build/lifecycle/stale-services.ts';
import { markSwitched, readState, transition, updateState } from '../build/lifecycle/state.ts';
import { readRunRecord } from '../build/lifecycle/runs.ts';
import { PXELINUX_DIR, runPath } from '../build/layout.ts';
import { run } from '../build/lib/run.ts';
import { writeServedTree, writeSpec } from './helpers/served-tree.ts';
import { workspace } from './helpers/workspace.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});
const node = { name: 'n1', mac: '52:54:00:00:00:01' };

describe('a run superseded while open', () => {
  it('goes into the node runs as failed, naming the action and the phase it was in', async () => {
    const ws = await workspace();
    cleanups.push(ws.cleanup);
    const file = join(ws.dir, 'state.json');
    await markSwitched(file, [node], 'reimage', 'installer', new Date('2026-01-01T00:00:00Z'), { runs: new Map([['n1', 'run-a']]) });
    await updateState(file, (doc) => void transition(doc, node, 'extract', 'installing', new Date('2026-01-01T00:01:00Z')));
    await markSwitched(file, [node], 'reimage', 'installer', new Date('2026-01-01T00:02:00Z'), { runs: new Map([['n1', 'run-b']]) });
    const s = (await readState(file)).nodes.n1!;
    expect(s).toMatchObject({ state: 'requested', run: 'run-b', tries: 1 });
    expect(s.runs).toEqual([{ run: 'run-a', result: 'failed', at: '2026-01-01T00:02:00.000Z', phases: { requested: 60, extract: 60 }, detail: 'superseded by reimage in phase extract' }]);
    // normal ends the open run the same way; a finished node's history gains no run.
    await markSwitched(file, [node], 'normal', 'debian', new Date('2026-01-01T00:03:00Z'));
    const after = (await readState(file)).nodes.n1!;
    expect(after.runs!.map((r) => [r.run, r.detail])).toEqual([['run-a', 'superseded by reimage in phase extract'], ['run-b', 'superseded by normal in phase requested']]);
    await markSwitched(file, [node], 'normal', 'debian', new Date('2026-01-01T00:04:00Z'));
    expect((await readState(file)).nodes.n1!.runs).toHaveLength(2);
  });
});

describe('services a dead serve left running', () => {
  async function fake(argv0: string): Promise<number> {
    const child = spawn('bash', ['-c', `exec -a "${argv0}" sleep 60`], { stdio: 'ignore' });
    cleanups.push(() => void child.kill('SIGKILL'));
    await new Promise((r) => setTimeout(r, 200));
    return child.pid!;
  }

  it('stops the ones whose command line names this run dir config; leaves a reused pid alone', async () => {
    const ws = await workspace();
    cleanups.push(ws.cleanup);
    const conf = join(ws.dir, 'dnsmasq.conf');
    const mine = await fake(`dnsmasq --conf-file=${conf}`);
    const other = await fake('nginx: master process nginx -c /etc/nginx/nginx.conf');
    await writeFile(join(ws.dir, 'dnsmasq.pid'), `${mine}\n`);
    await writeFile(join(ws.dir, 'nginx.pid'), `${other}\n`);
    // serve.pid names a dead process: the serve that died.
    await writeFile(join(ws.dir, 'serve.pid'), '999999\n');
    const stopped = await stopStaleServices(ws.dir, 'serve.pid', [
      { name: 'dnsmasq', pidFile: join(ws.dir, 'dnsmasq.pid'), config: conf },
      { name: 'nginx', pidFile: join(ws.dir, 'nginx.pid'), config: join(ws.dir, 'nginx.conf') },
    ]);
    expect(stopped).toEqual([`dnsmasq ${mine}`]);
    await new Promise((r) => setTimeout(r, 100));
    expect(pidAlive(mine)).toBe(false);
    expect(pidAlive(other)).toBe(true);
  });

  it('refuses while the serve of that run dir still runs', async () => {
    const ws = await workspace();
    cleanups.push(ws.cleanup);
    const serve = await fake('node main.ts serve --run-dir x');
    await writeFile(join(ws.dir, 'serve.pid'), `${serve}\n`);
    await expect(stopStaleServices(ws.dir, 'serve.pid', [])).rejects.toThrow(`another portacluster serve (pid ${serve}) runs on ${ws.dir}`);
  });
});

describe('reimage and normal racing on one node', () => {
  it('after each concurrent pair the link, the state and the run record agree', async () => {
    const ws = await workspace();
    cleanups.push(ws.cleanup);
    const { file, plan } = await writeSpec(ws.dir, { count: 1 });
    const root = join(ws.dir, 'srv');
    await writeServedTree(root, plan);
    const stateFile = join(ws.dir, 'state', 'state.json');
    const n = plan.nodes[0]!;
    const cli = (action: string) => run(['node', '--import', 'tsx', join(import.meta.dirname, '..', 'build/cli/main.ts'), action, n.name, '--config', file, '--root', root, '--state', stateFile]);
    for (let round = 0; round < 3; round++) {
      await Promise.all([cli('reimage'), cli('normal')]);
      const [l, doc, rec, served] = await Promise.all([
        readlink(join(root, PXELINUX_DIR, n.pxeFile)),
        readFile(stateFile, 'utf8').then((t) => JSON.parse(t)),
        readRunRecord(stateFile, n.name),
        readFile(join(root, runPath(n.mac)), 'utf8'),
      ]);
      const s = doc.nodes[n.name];
      if (l === plan.profiles.os) {
        expect(s).toMatchObject({ state: 'done', phase: 'normal' });
        expect(rec!.closed).toBeDefined();
      } else {
        expect(l).toBe(plan.profiles.installer);
        expect(s).toMatchObject({ state: 'requested', run: rec!.run });
        expect(rec!.closed, `round ${round + 1}: the open run's record was closed by the racing normal`).toBeUndefined();
        expect(served).toContain(`run=${rec!.run}\n`);
      }
    }
  }, 120_000);
});
