/**
 * A user's everyday situations through the real CLI in a child process: no permission on the tree, a
 * port already taken, no tree at all, another tree's state, nothing to wait for, a dry run, a bad ISO.
 * Each gives a message with what to do, the right exit code, and no stack trace.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { chmod, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeServedTree, writeSpec } from './helpers/served-tree.ts';
import { workspace } from './helpers/workspace.ts';
import { baseSpec } from './fixtures/specs.ts';
import type { Plan } from '../build/plan/plan.ts';

const CLI = resolve('build/cli/main.ts');
let ws: Awaited<ReturnType<typeof workspace>>;
let specFile: string;
let plan: Plan;
let tree: string;

function cli(args: string[], o: { env?: NodeJS.ProcessEnv; uid?: number; timeoutMs?: number } = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
    const c = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), CLI, ...args], {
      env: { ...process.env, PORTACLUSTER_DEBUG: '', PORTACLUSTER_STATE: join(ws.dir, 'var/state.json'), ...o.env },
      ...(o.uid !== undefined ? { uid: o.uid, gid: o.uid } : {}),
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => c.kill('SIGKILL'), o.timeoutMs ?? 30_000);
    c.stdout.on('data', (b) => (stdout += b));
    c.stderr.on('data', (b) => (stderr += b));
    c.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

const noStack = (s: string) => expect(s).not.toMatch(/^\s+at /m);

beforeAll(async () => {
  ws = await workspace('pc-errors-');
  ({ file: specFile, plan } = await writeSpec(ws.dir, { count: 2 }));
  tree = join(ws.dir, 'tree');
  await writeServedTree(tree, plan);
});
afterAll(() => ws.cleanup());

describe('system errors in words', () => {
  it('reimage without write permission on the tree: permission denied on the path, exit 1, no stack', async () => {
    // The tree and state are root's; the command runs as nobody, as a user without sudo would.
    await chmod(ws.dir, 0o755);
    const state = join(ws.dir, 'nobody-state.json');
    const r = await cli(['reimage', 'node1', '--config', specFile, '--root', tree, '--state', state], { uid: 65534 });
    expect(r.code, r.stderr).toBe(1);
    // The node moves under the switch lock beside the state file (lifecycle/state.ts): taking it is the first write refused.
    expect(r.stderr.split('\n')[0]).toBe(`portacluster: permission denied on ${join(ws.dir, 'switch.lock')} (open)`);
    expect(r.stderr).toContain('hint: run as a user who owns it (or with sudo)');
    noStack(r.stderr);
    // PORTACLUSTER_DEBUG=1: the same message, then the stack for whoever debugs it.
    const d = await cli(['reimage', 'node1', '--config', specFile, '--root', tree, '--state', state], { uid: 65534, env: { PORTACLUSTER_DEBUG: '1' } });
    expect(d.stderr).toContain('permission denied on');
    expect(d.stderr).toMatch(/^\s+at /m);
  });

  it('watch --listen on a taken port: names the address, suggests another watcher or --listen, exit 1, no stack', async () => {
    const taken: Server = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    try {
      const r = await cli(['watch', '--config', specFile, '--root', tree, '--state', join(ws.dir, 'w.json'), '--listen', `127.0.0.1:${port}`]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain(`portacluster: 127.0.0.1:${port} is already in use (listen)`);
      expect(r.stderr).toContain('is another `portacluster watch` running');
      expect(r.stderr).toContain('pick --listen ADDR:PORT');
      noStack(r.stderr);
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });
});

describe('lifecycle commands say what is going on', () => {
  it('status with no served tree says so, with a hint, and exits 1', async () => {
    const r = await cli(['status', '--config', specFile, '--root', join(ws.dir, 'nothing-here')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`portacluster: status: no served tree at ${join(ws.dir, 'nothing-here')} (${join(ws.dir, 'nothing-here')} does not exist)\n  hint: run \`portacluster build\` (then \`portacluster deploy\`), or name the tree with --root DIR\n`);
    expect(r.stdout).toBe('');
  });

  it("the state belongs to its tree: status --root B does not show what was done in tree A", async () => {
    const a = join(ws.dir, 'tree-a');
    const b = join(ws.dir, 'tree-b');
    await writeServedTree(a, plan);
    await writeServedTree(b, plan);
    const sw = await cli(['reimage', 'node1', '--config', specFile, '--root', a]);
    expect(sw.code, sw.stderr).toBe(0);
    const inA = JSON.parse((await cli(['status', '--config', specFile, '--root', a, '--json'])).stdout);
    expect(inA.nodes.map((n: { name: string; state: string | null }) => `${n.name}=${n.state}`)).toEqual(['node1=requested', 'node2=null']);
    const inB = JSON.parse((await cli(['status', '--config', specFile, '--root', b, '--json'])).stdout);
    expect(inB.nodes.map((n: { name: string; state: string | null }) => `${n.name}=${n.state}`)).toEqual(['node1=null', 'node2=null']);
    // Each tree's file sits beside the main one, named after the tree.
    expect(await readdir(join(ws.dir, 'var/trees'))).toEqual([a.replace(/\//g, '_')]);
    // Nothing requested in tree B: watch --until-done has nothing to wait for and says so at once.
    const w = await cli(['watch', '--config', specFile, '--root', b, '--until-done', '--listen', '127.0.0.1:0'], { timeoutMs: 20_000 });
    expect(w.code, w.stderr).toBe(0);
    expect(w.stdout).toContain('nothing to wait for: no node is requested or installing in');
    expect(w.stdout).toContain('hint: `portacluster reimage NODE` first');
  });

  it('deploy --dry-run to a new destination says "would create" and creates nothing', async () => {
    const dest = join(ws.dir, 'fresh', 'public');
    await mkdir(join(ws.dir, 'fresh'));
    const r = await cli(['deploy', dest, '--from', tree, '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`would create directory ${dest}`);
    expect(r.stdout).not.toMatch(/^created directory/m);
    expect(await readdir(join(ws.dir, 'fresh'))).toEqual([]);
  });
});

describe('ISO errors name the ISO the spec names', () => {
  it("a file that is no ISO: the message names installerEnv.path, not the cache's copy", async () => {
    const notIso = join(ws.dir, 'systemrescue.iso');
    const body = Buffer.from('this is not an ISO image\n'.repeat(100));
    await writeFile(notIso, body);
    const spec = baseSpec();
    spec.image = { name: 'tiny', distro: 'debian', release: 'bookworm', rootfs: join(ws.dir, 'rootfs') };
    spec.boot.os.name = 'debian';
    spec.installerEnv = { type: 'systemrescue', path: notIso, sha256: createHash('sha256').update(body).digest('hex') };
    const root = join(ws.dir, 'rootfs');
    for (const d of ['boot', 'lib/modules/6.1.0-9-amd64', 'etc']) await mkdir(join(root, d), { recursive: true });
    await writeFile(join(root, 'etc/os-release'), 'ID=debian\n');
    await writeFile(join(root, 'boot/vmlinuz-6.1.0-9-amd64'), 'k');
    await writeFile(join(root, 'boot/initrd.img-6.1.0-9-amd64'), 'i');
    const file = join(ws.dir, 'bad-iso.json');
    await writeFile(file, JSON.stringify(spec));
    const r = await cli(['build', '--config', file, '--out', join(ws.dir, 'dist'), '--cache', join(ws.dir, 'cache')], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`portacluster: extract-iso: cannot read ${notIso} \\(cached as ${join(ws.dir, 'cache')}/\\S+\\) as an ISO 9660 image`));
    noStack(r.stderr);
  });
});
