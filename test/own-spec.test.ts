/**
 * A user's own spec, as a new user keeps it: a portacluster.config.ts in a directory of theirs under /tmp
 * (no package.json, no node_modules), importing defineConfig from 'portacluster', edited there, and every
 * command run from that directory through bin/portacluster.js with no --config: validate, build, verify,
 * status, why, discovered, reimage, rescue, normal, watch, deploy, power (after a second edit that gives the
 * node a power command) and serve (inside a network namespace this test makes, holding node0's address).
 * Not here: diskless (needs installerEnv.type "builtin", a bootstrap of minutes), enroll (needs a discovered
 * machine: test/discover.test.ts), lab (QEMU: test/e2e/lab.test.ts), node0 (a root prefix: test/node0.test.ts).
 */
import { spawn } from 'node:child_process';
import { access, chmod, mkdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeSysrcdIso } from './helpers/make-iso.ts';
import { makeTinyRootfs } from './helpers/tiny-rootfs.ts';
import { workspace, FIXED_EPOCH } from './helpers/workspace.ts';
import { baseSpec } from './fixtures/specs.ts';
import { createNetns, type Netns } from './e2e/harness/netns.ts';
import { pidAlive } from '../build/lib/process.ts';
import { run } from '../build/lib/run.ts';

const BIN = resolve('bin/portacluster.js');
let ws: Awaited<ReturnType<typeof workspace>>;
let home: string;
let ns: Netns | undefined;

/** The CLI from the user's directory; `o.ns` runs it inside the namespace, `o.onLine` sees stdout as it comes. */
function pc(args: string[], o: { ns?: Netns; onStart?: (kill: (sig: NodeJS.Signals) => void) => void; onLine?: (line: string) => void } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const argv = o.ns ? o.ns.exec([process.execPath, BIN, ...args]) : [process.execPath, BIN, ...args];
    const child = spawn(argv[0]!, argv.slice(1), { cwd: home, env: { ...process.env, SOURCE_DATE_EPOCH: String(FIXED_EPOCH), PORTACLUSTER_STATE: join(home, 'state.json') } });
    o.onStart?.((sig) => child.kill(sig));
    let stdout = '';
    let stderr = '';
    let partial = '';
    child.stdout.on('data', (b) => {
      stdout += b;
      const lines = (partial + b).split('\n');
      partial = lines.pop()!;
      for (const l of lines) if (l) o.onLine?.(l);
    });
    child.stderr.on('data', (b) => (stderr += b));
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  ws = await workspace('pc-own-');
  home = join(ws.dir, 'my-cluster');
  const rootfs = join(ws.dir, 'rootfs');
  await makeTinyRootfs(rootfs);
  const iso = await makeSysrcdIso(join(ws.dir, 'iso'), 'modern');
  const spec = baseSpec();
  spec.image = { name: 'tiny', distro: 'debian', release: 'bookworm', rootfs };
  spec.boot.os.name = 'debian';
  spec.installerEnv = { type: 'systemrescue', path: iso.path, sha256: iso.sha256 };
  await mkdir(home, { recursive: true });
  await writeFile(join(home, 'portacluster.config.ts'), `import { defineConfig } from 'portacluster';\n\nexport default defineConfig(${JSON.stringify(spec, null, 2)});\n`);
}, 120_000);

afterAll(async () => {
  await ns?.stop();
  await ws.cleanup();
});

describe('a spec in a directory of its own', () => {
  it('is edited there, builds, and every lifecycle command runs on it', async () => {
    // The user's edit: a node renamed in their own copy.
    const file = join(home, 'portacluster.config.ts');
    await writeFile(file, (await readFile(file, 'utf8')).replace('"name": "node2"', '"name": "gpu1"'));

    const v = await pc(['validate']);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toMatch(/portacluster\.config\.ts: ok \(2 nodes/);

    const b = await pc(['build', '--out', 'dist', '--cache', join(ws.dir, 'cache'), '--json']);
    expect(b.code, b.stderr).toBe(0);
    expect(JSON.parse(b.stdout)).toMatchObject({ ok: true, spec: file });
    expect((await pc(['verify', 'dist'])).code).toBe(0);

    const status = await pc(['status', '--root', 'dist']);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/\ngpu1 +c0:3f:d5:60:cd:8b +debian /);

    const link = () => readlink(join(home, 'dist/pxe/pxelinux.cfg/01-c0-3f-d5-60-cd-8b'));
    for (const [cmd, profile] of [['reimage', 'installer'], ['rescue', 'rescue'], ['normal', 'debian'], ['reimage', 'installer']] as const) {
      const r = await pc([cmd, 'gpu1', '--root', 'dist']);
      expect(r.code, `${cmd}: ${r.stderr}`).toBe(0);
      expect(await link()).toBe(profile);
    }

    // The watcher on the user's tree: gpu1 was requested and never reports, so --until-done ends with its deadline missed.
    const w = await pc(['watch', '--root', 'dist', '--listen', '127.0.0.1:0', '--until-done', '--timeout', '1', '--json']);
    expect(w.code, w.stderr).toBe(1);
    expect(w.stdout).toMatch(/"node":"gpu1".*"state":"failed".*"detail":"timeout in requested/);

    const d = await pc(['deploy', join(ws.dir, 'srv/public'), '--from', 'dist']);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toMatch(/published .* files verified by sha256sum -c/);
    expect(await readlink(join(ws.dir, 'srv/public/pxe/pxelinux.cfg/01-c0-3f-d5-60-cd-8b'))).toBe('installer');

    // why: the node's boot chain in the user's tree, link by link.
    const why = await pc(['why', 'gpu1', '--root', 'dist', '--json']);
    expect(why.code, why.stderr + why.stdout).toBe(0);
    const chain = JSON.parse(why.stdout);
    expect(chain.node).toBe('gpu1');
    expect(chain.broken).toBeNull();
    expect(chain.steps.find((x: { what: string }) => x.what === 'link').detail).toBe('pxe/pxelinux.cfg/01-c0-3f-d5-60-cd-8b → installer');
    const disc = await pc(['discovered', '--root', 'dist', '--json']);
    expect(disc.code, disc.stderr).toBe(0);
    expect(JSON.parse(disc.stdout)).toEqual({ machines: [] });

    // A second edit: gpu1 gets power commands (argv, run on node0). power and reimage --reboot read them from the user's spec.
    const mark = (what: string) => join(home, `${what}-gpu1`);
    const powered = (await readFile(file, 'utf8')).replace('"name": "gpu1",', `"name": "gpu1", "power": ${JSON.stringify({ type: 'command', status: ['echo', 'on'], cycle: ['touch', join(home, 'cycled-{name}')] })},`);
    await writeFile(file, powered);
    const ps = await pc(['power', 'status', 'gpu1', '--json']);
    expect(ps.code, ps.stderr).toBe(0);
    expect(ps.stdout).toMatch(/"after": *"on"/);
    const rb = await pc(['reimage', 'gpu1', '--root', 'dist', '--reboot']);
    expect(rb.code, rb.stderr).toBe(0);
    await access(mark('cycled'));

    // serve: node0's services from the user's tree, in a namespace holding node0's address, then SIGTERM.
    for (const d of [ws.dir, home, join(home, 'dist')]) await chmod(d, 0o755);
    ns = await createNetns(`pc-own-${process.pid}`, '192.168.10.10/24');
    const pids: number[] = [];
    const codes: string[] = [];
    let stop: (sig: NodeJS.Signals) => void = () => {};
    const code = async (path: string) => (await run(ns!.exec(['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', `http://192.168.10.10/${path}`]), { nothrow: true })).stdout;
    const sv = await pc(['serve', '--root', 'dist', '--interface', ns.bridge, '--run-dir', join(home, 'run'), '--log-dir', join(home, 'log'), '--no-upstream-dns', '--json'], {
      ns,
      onStart: (kill) => (stop = kill),
      onLine: (l) => {
        const e = JSON.parse(l);
        if (e.event !== 'up') return;
        if (e.pid) pids.push(e.pid);
        // Once nginx is up: one file of the tree, and node0's own configs (kept from the nodes); then SIGTERM.
        if (e.service === 'nginx') void Promise.all([code('SHA256SUMS'), code('etc/portacluster.json')]).then((c) => (codes.push(...c), stop('SIGTERM')));
      },
    });
    expect(sv.code, sv.stderr).toBe(0);
    expect(sv.stdout).toMatch(/"event":"up".*"service":"nginx"/);
    expect(codes).toEqual(['200', '403']);
    expect(pids.length).toBeGreaterThanOrEqual(2);
    expect(pids.filter(pidAlive)).toEqual([]);
  }, 240_000);
});
