/**
 * node0 install | uninstall for real, into a temp root (--dest): the generated units (golden, and
 * `systemd-analyze verify` with the real binaries), the files, modes and ownership written, the real
 * config checks refusing a broken tree with nothing written, and uninstall leaving the root as before.
 * The CLI runs inside a network namespace holding the admin IP, because `nginx -t` binds the listen address.
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../build/lib/run.ts';
import { MANIFEST } from '../build/lifecycle/node0.ts';
import { planCluster, type Plan } from '../build/plan/plan.ts';
import { renderDnsmasqConf } from '../build/render/dnsmasq.ts';
import { renderNginxConf } from '../build/render/nginx.ts';
import { node0Files, unitWord, type Node0Mode } from '../build/render/systemd.ts';
import { loadSpec } from '../build/spec/load.ts';
import { createNetns, type Netns } from './e2e/harness/netns.ts';
import { expectGolden } from './helpers/golden.ts';
import { writeServedTree } from './helpers/served-tree.ts';
import { workspace } from './helpers/workspace.ts';

const REPO = join(import.meta.dirname, '..');
const EXAMPLE = join(REPO, 'examples/portacluster.config.ts');
let ws: Awaited<ReturnType<typeof workspace>>;
let plan: Plan;
let raw: unknown;
let ns: Netns;

beforeAll(async () => {
  ws = await workspace('pc-node0-');
  const loaded = await loadSpec(EXAMPLE);
  raw = loaded.raw;
  plan = planCluster(loaded.spec);
  ns = await createNetns(`pc-node0-${process.pid}`, `${plan.admin.ip}/${plan.admin.prefix}`);
}, 30_000);
afterAll(async () => {
  await ns?.stop();
  await ws?.cleanup();
});

/** A served tree as deployed on node0: the example's spec and its real generated configs in etc/. */
async function makeRoot(name: string, o: { nginx?: string } = {}): Promise<string> {
  const dest = join(ws.dir, name);
  const tree = join(dest, plan.admin.servedRoot);
  await writeServedTree(tree, plan);
  await writeFile(join(tree, 'etc/portacluster.json'), JSON.stringify(raw, null, 2));
  await writeFile(join(tree, 'etc/dnsmasq.conf'), renderDnsmasqConf(plan));
  await writeFile(join(tree, 'etc/nginx.conf'), o.nginx ?? renderNginxConf(plan));
  return dest;
}

/** Every path under a root with its type, mode, owner, link target and content hash. */
async function snapshot(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    for (const name of (await readdir(dir)).sort()) {
      const p = join(dir, name);
      const st = await lstat(p);
      const what = st.isSymbolicLink() ? `-> ${await readlink(p)}` : st.isDirectory() ? 'dir' : createHash('sha256').update(await readFile(p)).digest('hex');
      out.push(`${p.slice(root.length)} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${what}`);
      if (st.isDirectory()) await walk(p);
    }
  };
  await walk(root);
  return out;
}

function cli(args: string[]) {
  return run(ns.exec([process.execPath, join(REPO, 'bin/portacluster.js'), 'node0', ...args]), { nothrow: true });
}

const units = (mode: Node0Mode, node: string, bin: string) => node0Files(plan, { mode, root: plan.admin.servedRoot, node, bin, linkDirs: [`${plan.admin.servedRoot}/pxe/pxelinux.cfg`, `${plan.admin.servedRoot}/pxe/ipxe`] });

describe('node0 units', () => {
  it('match the golden files for the bundled example, in both modes', async () => {
    for (const mode of ['dedicated', 'shared'] as const)
      for (const f of units(mode, '/usr/bin/node', '/opt/portacluster/bin/portacluster.js')) await expectGolden(`node0/${mode}/${f.path}`, f.text);
  });

  it('pass systemd-analyze verify, pointing at the real node, portacluster bin, dnsmasq and nginx', async () => {
    const dir = join(ws.dir, 'verify');
    await mkdir(dir, { recursive: true });
    const paths: string[] = [];
    for (const f of units('dedicated', process.execPath, join(REPO, 'bin/portacluster.js')).filter((f) => f.path.endsWith('.service'))) {
      paths.push(join(dir, f.path.split('/').at(-1)!));
      await writeFile(paths.at(-1)!, f.text);
    }
    expect(paths).toHaveLength(3);
    const r = await run(['systemd-analyze', 'verify', '--man=no', ...paths], { nothrow: true });
    expect(r.stderr + r.stdout).toBe('');
    expect(r.exitCode).toBe(0);
    // And it can fail: a unit naming a binary that is not there is refused.
    await writeFile(paths[0]!, (await readFile(paths[0]!, 'utf8')).replace(process.execPath, '/usr/bin/no-such-node'));
    expect((await run(['systemd-analyze', 'verify', '--man=no', paths[0]!], { nothrow: true })).exitCode).not.toBe(0);
  });

  it('refuse a path systemd would split or expand', () => {
    expect(() => unitWord('/srv/my public', '--root')).toThrow(/cannot go into a systemd unit/);
    expect(() => unitWord('/srv/%h', '--root')).toThrow(/cannot go into a systemd unit/);
  });
});

describe('node0 install | uninstall into a temp root', () => {
  it('writes the units, the user and the link ownership, enables them, says systemd is not running; uninstall restores the root', async () => {
    const dest = await makeRoot('dedicated');
    const before = await snapshot(dest);
    const dry = await cli(['install', '--dest', dest, '--dry-run']);
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout).toContain(`would write ${join(dest, 'etc/systemd/system/portacluster-watch.service')}`);
    expect(await snapshot(dest)).toEqual(before);
    const r = await cli(['install', '--dest', dest]);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('systemd is not running here: units written, not started');

    for (const u of ['portacluster-watch', 'portacluster-dnsmasq', 'portacluster-nginx']) {
      const st = await lstat(join(dest, 'etc/systemd/system', `${u}.service`));
      expect((st.mode & 0o777).toString(8)).toBe('644');
      expect(await readlink(join(dest, 'etc/systemd/system/multi-user.target.wants', `${u}.service`))).toContain(`${u}.service`);
    }
    const passwd = await readFile(join(dest, 'etc/passwd'), 'utf8');
    const user = /^portacluster:x:(\d+):(\d+):/m.exec(passwd);
    expect(user).not.toBeNull();
    const tree = join(dest, plan.admin.servedRoot);
    for (const d of ['pxe/pxelinux.cfg', 'pxe/ipxe']) {
      const st = await lstat(join(tree, d));
      expect(`${st.uid}:${st.gid}`).toBe(`${user![1]}:${user![2]}`);
    }
    // Only the link directories: the rest of the tree stays root's.
    expect((await lstat(join(tree, 'pxe'))).uid).toBe(0);
    const watch = await readFile(join(dest, 'etc/systemd/system/portacluster-watch.service'), 'utf8');
    expect(watch).toContain(`ReadWritePaths=${plan.admin.servedRoot}/pxe/pxelinux.cfg ${plan.admin.servedRoot}/pxe/ipxe\n`);
    const manifest = JSON.parse(await readFile(join(dest, MANIFEST), 'utf8'));
    expect(manifest.units).toEqual(['portacluster-watch.service', 'portacluster-dnsmasq.service', 'portacluster-nginx.service']);

    // Installing again over its own files is fine; then uninstall leaves the root exactly as before.
    expect((await cli(['install', '--dest', dest])).exitCode).toBe(0);
    const u = await cli(['uninstall', '--dest', dest]);
    expect(u.exitCode).toBe(0);
    expect(u.stdout).toContain('systemd is not running here: units removed, nothing to stop');
    expect(await snapshot(dest)).toEqual(before);
    // A second uninstall has nothing to do and says so.
    const again = await cli(['uninstall', '--dest', dest]);
    expect(again.exitCode).toBe(2);
    expect(again.stderr).toContain('nothing to uninstall');
  }, 60_000);

  it('shared mode: a conf.d server block instead of an nginx unit, checked by nginx -t inside the distro config', async () => {
    const dest = await makeRoot('shared');
    // A distro nginx that includes conf.d and serves another site, which must keep loading.
    await mkdir(join(dest, 'etc/nginx/conf.d'), { recursive: true });
    await writeFile(join(dest, 'etc/nginx/nginx.conf'), `pid ${join(ws.dir, 'shared-nginx.pid')};\nerror_log stderr;\nevents {}\nhttp {\n    server { listen 127.0.0.1:8081; }\n    include ${join(dest, 'etc/nginx/conf.d')}/*.conf;\n}\n`);
    const before = await snapshot(dest);
    const r = await cli(['install', '--dest', dest, '--mode', 'shared']);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.exitCode).toBe(0);
    const snippet = await readFile(join(dest, 'etc/nginx/conf.d/portacluster.conf'), 'utf8');
    expect(snippet).toMatch(/^log_format portacluster /m);
    expect(snippet).toMatch(/^server \{$/m);
    expect(snippet).not.toMatch(/^(http|events) /m);
    expect((await lstat(join(dest, 'etc/systemd/system/portacluster-nginx.service')).catch(() => null))).toBeNull();
    expect((await run(['nginx', '-t', '-q', '-c', join(dest, 'etc/nginx/nginx.conf')].map(String), { nothrow: true })).exitCode).not.toBe(0); // the admin IP exists only in the netns
    expect((await run(ns.exec(['nginx', '-t', '-q', '-c', join(dest, 'etc/nginx/nginx.conf')]), { nothrow: true })).exitCode).toBe(0);
    expect((await cli(['uninstall', '--dest', dest])).exitCode).toBe(0);
    expect(await snapshot(dest)).toEqual(before);
  }, 60_000);

  it('refuses a tree whose nginx.conf nginx -t rejects, a unit file it did not write, and a wrong --root; nothing is written', async () => {
    const dest = await makeRoot('broken', { nginx: renderNginxConf(plan).replace('keepalive_timeout 0;', 'keepalive_timeout zero;') });
    const before = await snapshot(dest);
    const r = await cli(['install', '--dest', dest]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/nginx refuses .*etc\/nginx\.conf/);
    expect(r.stderr).toMatch(/invalid value "zero"|"keepalive_timeout" directive invalid value/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(await snapshot(dest)).toEqual(before);

    const ok = await makeRoot('foreign');
    await mkdir(join(ok, 'etc/systemd/system'), { recursive: true });
    await writeFile(join(ok, 'etc/systemd/system/portacluster-dnsmasq.service'), '[Service]\nExecStart=/bin/true\n');
    const snap = await snapshot(ok);
    const f = await cli(['install', '--dest', ok]);
    expect(f.exitCode).toBe(2);
    expect(f.stderr).toMatch(/portacluster-dnsmasq\.service exists and was not written by portacluster; nothing was written/);
    expect(await snapshot(ok)).toEqual(snap);

    const w = await cli(['install', '--dest', ok, '--root', '/srv/other']);
    expect(w.exitCode).toBe(2);
    expect(w.stderr).toMatch(/no served tree at .*\/srv\/other/);
  }, 60_000);
});
