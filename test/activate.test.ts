/**
 * deploy --activate for real: releases with real generated configs deployed to a local dir. A release
 * whose etc/nginx.conf nginx -t rejects is refused before the switch; with a `portacluster serve`
 * running in a network namespace for that dir, a changed release makes serve reload (nginx re-reads its
 * config, dnsmasq restarts when its config changed, the watcher restarts) without the group stopping, and a spec serve's own renderer
 * cannot run is refused with the old release left live.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, chown, lstat, mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StageError } from '../build/lib/errors.ts';
import { run } from '../build/lib/run.ts';
import { deploy } from '../build/lifecycle/deploy.ts';
import { planCluster } from '../build/plan/plan.ts';
import { renderDnsmasqConf } from '../build/render/dnsmasq.ts';
import { renderNginxConf } from '../build/render/nginx.ts';
import { validateSpec } from '../build/spec/validate.ts';
import { checksumTree } from '../build/stages/checksum-tree.ts';
import { createNetns, type Netns } from './e2e/harness/netns.ts';
import { baseSpec } from './fixtures/specs.ts';
import { writeServedTree } from './helpers/served-tree.ts';
import { startSshd } from './helpers/sshd.ts';
import { workspace } from './helpers/workspace.ts';

const REPO = join(import.meta.dirname, '..');
const ADMIN = '192.168.10.10';
let ws: Awaited<ReturnType<typeof workspace>>;
let ns: Netns;

beforeAll(async () => {
  ws = await workspace('pc-activate-');
  // dnsmasq's TFTP and nginx's workers run as nobody: the served path must be searchable.
  await chmod(ws.dir, 0o755);
  ns = await createNetns(`pc-act-${process.pid}`, `${ADMIN}/24`);
}, 30_000);
afterAll(async () => {
  await ns?.stop();
  await ws?.cleanup();
});

/** A built tree for a spec: the served-tree fixture plus the real etc/ the build ships, checksummed. */
async function release(name: string, o: { edit?: (spec: Record<string, any>) => void; etc?: (files: Record<string, string>) => void; extra?: Record<string, string> } = {}): Promise<string> {
  const dir = join(ws.dir, name);
  const spec = baseSpec();
  spec.admin.servedRoot = join(ws.dir, 'srv/public');
  o.edit?.(spec);
  const plan = planCluster(validateSpec(spec, name));
  await writeServedTree(dir, plan, { version: name });
  const etc: Record<string, string> = { 'portacluster.json': JSON.stringify(spec, null, 2), 'dnsmasq.conf': renderDnsmasqConf(plan), 'nginx.conf': renderNginxConf(plan) };
  o.etc?.(etc);
  for (const [f, text] of Object.entries(etc)) await writeFile(join(dir, 'etc', f), text);
  for (const [f, text] of Object.entries(o.extra ?? {})) await writeFile(join(dir, f), text);
  await checksumTree(dir, { portacluster: '1', specHash: plan.specHash, sourceDateEpoch: 0, tools: {}, artifacts: { version: name } });
  return dir;
}

/** Every file served through dest, with its bytes: what a node would see. */
async function servedSnapshot(dest: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string, rel: string) => {
    for (const name of (await readdir(dir)).sort()) {
      const p = join(dir, name);
      const st = await lstat(p);
      if (st.isDirectory()) await walk(p, `${rel}${name}/`);
      else out[rel + name] = st.isSymbolicLink() ? `-> ${await readlink(p)}` : (await readFile(p)).toString('base64');
    }
  };
  await walk(dest + '/', '');
  return out;
}

function deployCli(args: string[]) {
  return run(ns.exec([process.execPath, join(REPO, 'bin/portacluster.js'), 'deploy', ...args]), { nothrow: true });
}

describe('deploy --activate', () => {
  const dest = () => join(ws.dir, 'srv/public');

  it('refuses a release whose etc/nginx.conf nginx -t rejects: nothing is switched, the live release stays byte-identical', async () => {
    await mkdir(join(ws.dir, 'srv'), { recursive: true });
    await deploy({ from: await release('v1'), dest: dest() });
    const live = await readlink(dest());
    const before = await servedSnapshot(dest());
    const bad = await release('bad', { etc: (f) => (f['nginx.conf'] = f['nginx.conf']!.replace('keepalive_timeout 0;', 'keepalive_timeout zero;')), extra: { 'installer/autorun': '#!/bin/bash\necho bad\n' } });
    const err = await deploy({ from: bad, dest: dest(), activate: true, runDir: join(ws.dir, 'run') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StageError);
    expect((err as Error).message).toMatch(/--activate: nginx refuses the new release's nginx\.conf on this machine/);
    expect((err as Error).message).toMatch(/"keepalive_timeout" directive invalid value/);
    expect((err as Error).message).not.toContain('syntax check OK');
    expect((err as Error).message).toMatch(/nothing was switched: .*stays live/);
    expect(await readlink(dest())).toBe(live);
    expect(await servedSnapshot(dest())).toEqual(before);
    expect((await readdir(`${dest()}.releases`)).filter((n) => n.startsWith('.incoming'))).toEqual([]);
  }, 60_000);

  it('over ssh: the same checks run on node0 and refuse the same release', async () => {
    const sshd = await startSshd(join(ws.dir, 'ssh'));
    try {
      const remote = join(ws.dir, 'remote/public');
      await mkdir(join(ws.dir, 'remote'), { recursive: true });
      await deploy({ from: join(ws.dir, 'v1'), dest: `node0:${remote}`, sshConfig: sshd.sshConfig });
      const live = await readlink(remote);
      const err = await deploy({ from: join(ws.dir, 'bad'), dest: `node0:${remote}`, sshConfig: sshd.sshConfig, activate: true, runDir: join(ws.dir, 'run') }).catch((e: unknown) => e);
      expect((err as Error).message).toMatch(/--activate: nginx refuses the new release's nginx\.conf on node0:\n.*"keepalive_timeout" directive invalid value/s);
      expect(await readlink(remote)).toBe(live);
      expect((await readdir(`${remote}.releases`)).filter((n) => n.startsWith('.incoming'))).toEqual([]);
    } finally {
      await sshd.stop();
    }
  }, 60_000);

  it('with nothing running, publishes and says how to start the services', async () => {
    const v2 = await release('v2', { edit: (s) => (s.dhcp.leaseTime = '2h'), extra: { 'installer/autorun': '#!/bin/bash\necho v2\n' } });
    // node0 install gives the link directories to the watcher's user; the next release keeps that owner.
    await chown(join(dest(), 'pxe/pxelinux.cfg'), 65534, 65534);
    const r = await deployCli([dest(), '--from', v2, '--activate', '--run-dir', join(ws.dir, 'run')]);
    expect((await lstat(join(dest(), 'pxe/pxelinux.cfg'))).uid).toBe(65534);
    expect((await lstat(join(dest(), 'pxe/ipxe'))).uid).toBe(0);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/activate: etc\/ changed; no running services found for .*srv\/public on this machine/);
    expect(r.stdout).toMatch(/portacluster serve --root .*srv\/public/);
  }, 60_000);

  it("tells a release whose dnsmasq.conf changed only in its header (the spec's hash) from one whose directives changed", async () => {
    // The live release is v2 (lease time 2h): systemd's units then reload without restarting dnsmasq.
    // precheckRelease in the namespace, where nginx -t can bind the admin address, as deploy runs it on node0.
    const verdict = async (inc: string) => {
      const code = `const { precheckRelease } = await import(${JSON.stringify(join(REPO, 'build/lifecycle/activate.ts'))}); console.log(await precheckRelease({ target: {}, dest: ${JSON.stringify(dest())}, runDir: ${JSON.stringify(join(ws.dir, 'run-none'))} }, ${JSON.stringify(inc)}, null));`;
      const r = await run(ns.exec([process.execPath, '--import', 'tsx', '--input-type=module', '-e', code]), { cwd: REPO, nothrow: true });
      expect(r.exitCode, r.stderr).toBe(0);
      return r.stdout.trim();
    };
    const header = await release('v2-header', { edit: (s) => ((s.phoneHome = { path: '/pcx/report' }), (s.dhcp.leaseTime = '2h')) });
    const lease = await release('v2-lease', { edit: (s) => (s.dhcp.leaseTime = '5h') });
    expect(await readFile(join(header, 'etc/dnsmasq.conf'), 'utf8')).not.toBe(await readFile(join(dest(), 'etc/dnsmasq.conf'), 'utf8'));
    expect(await verdict(header)).toBe('changed-not-dnsmasq');
    expect(await verdict(lease)).toBe('changed');
    expect(await verdict(join(dirname(dest()), await readlink(dest())))).toBe('same');
  });

  it('makes a running serve reload without the group stopping, and refuses a spec serve cannot run', async () => {
    const runDir = join(ws.dir, 'run');
    const argv = ns.exec([process.execPath, join(REPO, 'bin/portacluster.js'), 'serve', '--root', dest(), '--state', join(ws.dir, 'state/state.json'), '--run-dir', runDir, '--log-dir', join(ws.dir, 'log'), '--interface', ns.bridge, '--json']);
    const child: ChildProcess = spawn(argv[0]!, argv.slice(1), { cwd: ws.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const events: Record<string, any>[] = [];
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    createInterface({ input: child.stdout! }).on('line', (l) => events.push(JSON.parse(l)));
    const waitFor = async (pred: (e: Record<string, any>) => boolean, ms = 20_000) => {
      for (const t0 = Date.now(); Date.now() - t0 < ms; await new Promise((r) => setTimeout(r, 100))) {
        const hit = events.find(pred);
        if (hit) return hit;
      }
      throw new Error(`timed out; events:\n${events.map((e) => JSON.stringify(e)).join('\n')}\nstderr:\n${stderr}`);
    };
    try {
      await waitFor((e) => e.event === 'up' && e.service === 'nginx');
      const dnsmasqPid = events.find((e) => e.event === 'up' && e.service === 'dnsmasq')!.pid;
      for (let i = 0; i < 50 && !(await lstat(join(runDir, 'serve.json')).catch(() => null)); i++) await new Promise((r) => setTimeout(r, 100));
      // `ip netns exec` execs serve in place: the pid deploy finds is the one we started.
      expect(await readFile(join(runDir, 'serve.pid'), 'utf8')).toBe(`${child.pid}\n`);

      // v2b: a new phone-home path, v2's lease time (nginx's proxy and the watcher change, dnsmasq's config does not):
      // dnsmasq keeps running, so a TFTP transfer in flight is not dropped.
      const v2b = await release('v2b', { edit: (s) => ((s.phoneHome = { path: '/pc3/report' }), (s.dhcp.leaseTime = '2h')) });
      const kept = await deployCli([dest(), '--from', v2b, '--activate', '--run-dir', runDir, '--json']);
      expect(kept.exitCode, kept.stderr).toBe(0);
      expect(await waitFor((e) => e.event === 'reload')).toMatchObject({ ok: true, message: expect.stringMatching(/dnsmasq kept \(its config is the same\), the watcher restarted$/) });
      expect(events.filter((e) => e.event === 'up' && e.service === 'dnsmasq')).toHaveLength(1);
      events.splice(0, events.length, ...events.filter((e) => e.event !== 'reload'));

      // v3: the same path, a new lease time (dnsmasq's config changes) and a new file.
      const v3 = await release('v3', { edit: (s) => ((s.phoneHome = { path: '/pc3/report' }), (s.dhcp.leaseTime = '4h')), extra: { 'installer/new-in-v3': 'fresh\n' } });
      const r = await deployCli([dest(), '--from', v3, '--activate', '--run-dir', runDir, '--json']);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.exitCode).toBe(0);
      expect(JSON.parse(r.stdout).activation).toMatchObject({ etc: 'changed', services: 'serve' });
      expect(await waitFor((e) => e.event === 'reload')).toMatchObject({ ok: true, message: expect.stringMatching(/nginx re-read its config \(SIGHUP\), dnsmasq restarted, the watcher restarted$/) });
      expect((await run(ns.exec(['curl', '-fsS', `http://${ADMIN}/installer/new-in-v3`]))).stdout).toBe('fresh\n');
      // The reloaded watcher answers on the new path: node1 has no requested run, so its start is refused (409).
      expect((await run(ns.exec(['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST', `http://${ADMIN}/pc3/report/start?host=node1&mac=c0:3f:d5:60:e5:a1`]))).stdout).toBe('409');
      expect((await waitFor((e) => e.event === 'report')).report).toMatchObject({ node: 'node1', phase: 'start', state: 'ignored' });
      // dnsmasq came back with a new pid; nothing stopped the group.
      const ups = events.filter((e) => e.event === 'up' && e.service === 'dnsmasq');
      expect(ups).toHaveLength(2);
      expect(ups[1]!.pid).not.toBe(dnsmasqPid);
      expect(events.filter((e) => e.event === 'stopping' || e.event === 'exit')).toEqual([]);

      // v4: the tree's own configs are v3's (they pass), but its spec puts nginx on an address this host
      // lacks: serve's renderer, run as serve runs it, is refused before the switch.
      const live = await readlink(dest());
      const before = await servedSnapshot(dest());
      const v3etc = Object.fromEntries(await Promise.all(['dnsmasq.conf', 'nginx.conf'].map(async (f) => [f, await readFile(join(v3, 'etc', f), 'utf8')])));
      const v4 = await release('v4', { edit: (s) => (s.admin.ip = '192.168.10.99'), etc: (f) => Object.assign(f, v3etc) });
      const bad = await deployCli([dest(), '--from', v4, '--activate', '--run-dir', runDir]);
      expect(bad.exitCode).toBe(1);
      expect(bad.stderr).toMatch(/serve's runtime config: nginx refuses its config/);
      expect(bad.stderr).toMatch(/192\.168\.10\.99:80 failed/);
      expect(bad.stderr).toMatch(/nothing was switched/);
      expect(await readlink(dest())).toBe(live);
      expect(await servedSnapshot(dest())).toEqual(before);
      expect(child.exitCode).toBeNull();

      // v5 passes every check made before the switch, but serve refuses to reload onto it (its top directory
      // is mode 700: nginx's workers could not read it): the link goes back to v3, whose configs serve kept.
      const v5 = await release('v5', { edit: (s) => ((s.phoneHome = { path: '/pc3/report' }), (s.dhcp.leaseTime = '3h')), extra: { 'installer/new-in-v5': 'v5\n' } });
      await chmod(v5, 0o700);
      const reloadsBefore = events.filter((e) => e.event === 'reload').length;
      const back = await deployCli([dest(), '--from', v5, '--activate', '--run-dir', runDir]);
      expect(back.stderr).not.toMatch(/\n\s+at /);
      expect(back.exitCode).toBe(1);
      expect(back.stderr).toMatch(/portacluster serve \(pid \d+\) refused the reload and keeps its previous config:\n.*is mode 700/s);
      expect(back.stderr).toContain(`switched ${dest()} back to ${join(dirname(dest()), live)}\n`);
      expect(await readlink(dest())).toBe(live);
      expect(await servedSnapshot(dest())).toEqual(before);
      // serve refused v5 and kept v3's configs, which are live again: nothing to reload after the switch back.
      expect(events.filter((e) => e.event === 'reload').slice(reloadsBefore).map((e) => e.ok)).toEqual([false]);
      expect((await run(ns.exec(['curl', '-fsS', `http://${ADMIN}/installer/new-in-v3`]))).stdout).toBe('fresh\n');
      expect(child.exitCode).toBeNull();

      // serve's own SIGHUP with a spec its tools refuse: it says so and keeps serving the previous config.
      const liveSpec = join(dest(), 'etc/portacluster.json');
      const good = await readFile(liveSpec, 'utf8');
      await writeFile(liveSpec, good.replace('"192.168.10.10"', '"192.168.10.99"'));
      const seen = events.length;
      process.kill(child.pid!, 'SIGHUP');
      expect(await waitFor((e) => e.event === 'reload' && !e.ok && events.indexOf(e) >= seen)).toMatchObject({ message: expect.stringMatching(/nginx refuses its config .*nginx\.conf\.new; the running services keep their previous config/s) });
      await writeFile(liveSpec, good);
      expect((await run(ns.exec(['curl', '-fsS', `http://${ADMIN}/installer/new-in-v3`]))).stdout).toBe('fresh\n');
      expect(events.filter((e) => e.event === 'stopping' || e.event === 'exit')).toEqual([]);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('close', r)));
    }
    expect(events.at(-1)).toMatchObject({ event: 'stopped', code: 0 });
    // A stopped serve leaves no pid file for the next deploy to signal.
    expect(await readdir(join(ws.dir, 'run')).then((l) => l.filter((f) => /^(serve\.pid|serve\.json|reload\.json)$/.test(f)))).toEqual([]);
  }, 120_000);
});
