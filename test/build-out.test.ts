/**
 * What `build --out` may replace, and what an interrupted build leaves behind, through the real CLI in a
 * child process. Every refused target is snapshotted before and after: refusing means not one byte moved.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, readdir, readlink, symlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capture } from '../build/lib/run.ts';
import { makeSysrcdIso } from './helpers/make-iso.ts';
import { makeTinyRootfs } from './helpers/tiny-rootfs.ts';
import { startFileServer } from './helpers/file-server.ts';
import { workspace, FIXED_EPOCH } from './helpers/workspace.ts';
import { baseSpec } from './fixtures/specs.ts';

const CLI = resolve('build/cli/main.ts');
let ws: Awaited<ReturnType<typeof workspace>>;
let specFile: string;
let iso: { path: string; sha256: string };

function cli(args: string[], o: { cwd?: string; signalWhen?: (stderr: string) => boolean; signal?: NodeJS.Signals } = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
    const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), CLI, ...args], { cwd: o.cwd, env: { ...process.env, SOURCE_DATE_EPOCH: String(FIXED_EPOCH) } });
    let stdout = '';
    let stderr = '';
    let sent = false;
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => {
      stderr += b;
      if (!sent && o.signalWhen?.(stderr)) {
        sent = true;
        child.kill(o.signal ?? 'SIGINT');
      }
    });
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

/** Every entry with type, mode, size and link target, and every file's sha256. */
async function snapshot(path: string): Promise<string> {
  const entries = await capture(['find', path, '-printf', '%P %y %m %s %l\\n']);
  const sums = await capture(['bash', '-c', 'cd "$1" 2>/dev/null && find . -type f -print0 | sort -z | xargs -0 -r sha256sum; sha256sum -- "$1" 2>/dev/null || true', 'snap', path]);
  return entries.split('\n').sort().join('\n') + sums;
}

async function writeTinySpec(file: string, installerEnv: Record<string, unknown>) {
  const spec = baseSpec();
  spec.image = { name: 'tiny', distro: 'debian', release: 'bookworm', rootfs: join(ws.dir, 'rootfs') };
  spec.boot.os.name = 'debian';
  spec.installerEnv = installerEnv;
  await writeFile(file, JSON.stringify(spec, null, 2));
}

beforeAll(async () => {
  ws = await workspace('pc-out-');
  const root = join(ws.dir, 'rootfs');
  await makeTinyRootfs(root);
  iso = await makeSysrcdIso(join(ws.dir, 'iso'), 'modern');
  specFile = join(ws.dir, 'cluster.json');
  await writeTinySpec(specFile, { type: 'systemrescue', path: iso.path, sha256: iso.sha256 });
});
afterAll(() => ws.cleanup());

/** Runs a build that must be refused: exit 2, before any stage, the target untouched. */
async function expectRefused(out: string, args: string[], o: { cwd?: string; snap?: string } = {}) {
  const snap = o.snap ?? out;
  const before = await snapshot(snap);
  const r = await cli(['build', '--config', specFile, '--out', out, '--cache', join(ws.dir, 'cache'), ...args], o);
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr).not.toContain('==> ');
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(await snapshot(snap)).toBe(before);
  return r.stderr;
}

describe('build --out refuses what it would destroy', () => {
  it('the current directory (--out .), naming it and the way out', async () => {
    const here = join(ws.dir, 'project');
    await mkdir(here, { recursive: true });
    await writeFile(join(here, 'notes.md'), 'my notes\n');
    // The snapshot is of the user's directory (the test process's own '.' is the repository).
    const err = await expectRefused('.', [], { cwd: here, snap: here });
    expect(err).toContain(`--out . (${here}): is the current directory; nothing was built or changed`);
    expect(err).toContain('hint: give --out a new path');
    // Not even --force-out replaces the current directory or one of its ancestors.
    await expectRefused('.', ['--force-out'], { cwd: here, snap: here });
    await expectRefused(ws.dir, ['--force-out'], { cwd: here });
    await expectRefused('/', ['--force-out'], { cwd: here, snap: join(ws.dir, 'project') });
  });

  it('the repository itself, from anywhere', async () => {
    const r = await cli(['build', '--config', specFile, '--out', resolve('.'), '--cache', join(ws.dir, 'cache'), '--force-out'], { cwd: ws.dir });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`is or holds portacluster itself (${resolve('.')})`);
  });

  it('a file', async () => {
    const file = join(ws.dir, 'README.md');
    await writeFile(file, '# mine\n');
    const err = await expectRefused(file, ['--force-out']);
    expect(err).toContain('is a file, not a directory');
    expect(await readFile(file, 'utf8')).toBe('# mine\n');
  });

  it('a directory portacluster did not build, unless --force-out', async () => {
    const dir = join(ws.dir, 'docs');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'spec.ts'), 'export default {}\n');
    const err = await expectRefused(dir, []);
    expect(err).toContain('is a directory portacluster did not build (no manifest.json marked portacluster: "1"); it holds spec.ts, which the build would delete');
    expect(err).toContain('hint: pass --force-out to replace it anyway, or give --out a new path');
    const forced = await cli(['build', '--config', specFile, '--out', dir, '--cache', join(ws.dir, 'cache'), '--force-out', '-q']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(await readdir(dir)).toContain('manifest.json');
  });

  it('the cache dir, or a dir holding it', async () => {
    const cache = join(ws.dir, 'cache');
    await mkdir(cache, { recursive: true });
    expect(await expectRefused(cache, ['--force-out'])).toContain('the build cache');
    await expectRefused(join(cache, 'images'), ['--force-out'], { snap: cache });
  });

  it('a served tree whose node links were switched since it was built, unless --force-out; a deployed tree (symlink, release) always', async () => {
    const dist = join(ws.dir, 'served');
    const ok = await cli(['build', '--config', specFile, '--out', dist, '--cache', join(ws.dir, 'cache'), '-q']);
    expect(ok.code, ok.stderr).toBe(0);
    // Unchanged links: an ordinary rebuild replaces it.
    const again = await cli(['build', '--config', specFile, '--out', dist, '--cache', join(ws.dir, 'cache'), '-q']);
    expect(again.code, again.stderr).toBe(0);
    // node1 is being reimaged: its link now says rescue; a build would reset it to installer.
    const sw = await cli(['rescue', 'node1', '--config', specFile, '--root', dist, '--state', join(ws.dir, 'state.json')]);
    expect(sw.code, sw.stderr).toBe(0);
    const err = await expectRefused(dist, []);
    expect(err).toContain('is a served tree whose node links were switched since it was built');
    expect(err).toContain('pxe/pxelinux.cfg/01-c0-3f-d5-60-e5-a1 -> rescue (the build writes installer)');
    // Deployed: /srv/public is a symlink into <dest>.releases/.
    const pub = join(ws.dir, 'public');
    const dep = await cli(['deploy', pub, '--from', dist]);
    expect(dep.code, dep.stderr).toBe(0);
    const release = await readlink(pub);
    expect(await expectRefused(pub, ['--force-out'], { snap: ws.dir + '/public.releases' })).toContain('is a symlink to');
    expect(await readlink(pub)).toBe(release);
    expect(await expectRefused(join(ws.dir, release), ['--force-out'], { snap: ws.dir + '/public.releases' })).toContain('is inside a release of a deployed tree');
    expect(await expectRefused(join(pub, 'images'), ['--force-out'], { snap: ws.dir + '/public.releases' })).toContain('is inside a release of a deployed tree');
    const forced = await cli(['build', '--config', specFile, '--out', dist, '--cache', join(ws.dir, 'cache'), '--force-out', '-q']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(await readlink(join(dist, 'pxe/pxelinux.cfg/01-c0-3f-d5-60-e5-a1'))).toBe('installer');
  });
});

describe('an interrupted build', () => {
  it('on SIGINT says what it interrupted, leaves dist/ as it was, removes its staging dir and exits 130; the next build sweeps dead work dirs', async () => {
    const dist = join(ws.dir, 'dist-int');
    const cache = join(ws.dir, 'cache-int');
    const first = await cli(['build', '--config', specFile, '--out', dist, '--cache', cache, '-q']);
    expect(first.code, first.stderr).toBe(0);
    const before = await snapshot(dist);
    // The ISO comes from a server that never sends the body: the build waits in "fetch ISO" for the signal.
    const server = await startFileServer(await readFile(iso.path), () => ({ stall: true }));
    try {
      const stalled = join(ws.dir, 'stalled.json');
      await writeTinySpec(stalled, { type: 'systemrescue', url: server.url, sha256: '0'.repeat(64) });
      for (const signal of ['SIGINT', 'SIGTERM'] as const) {
        const r = await cli(['build', '--config', stalled, '--out', dist, '--cache', cache, '--force-out'], { signal, signalWhen: (s) => s.includes('==> [installer environment] fetch ISO') });
        expect(r.code, r.stderr).toBe(signal === 'SIGINT' ? 130 : 143);
        // The installer environment is built beside the image: the main chain may still be in one of its steps.
        expect(r.stderr).toMatch(new RegExp(`portacluster: build interrupted by ${signal} during ("[a-z ()]+" and )?"installer environment"; ${dist} was left as it was`));
        expect(r.stderr).toMatch(/removed 1 temporary directory: \S+\/\.dist-int\.staging-\d+/);
        expect(r.stderr).not.toMatch(/^\s+at /m);
        expect((await readdir(ws.dir)).filter((n) => n.startsWith('.dist-int.'))).toEqual([]);
        expect(await snapshot(dist)).toBe(before);
      }
    } finally {
      await server.close();
    }
    // A build killed with -9 ran no handler: its work dirs are swept by the next build.
    const dead = join(cache, 'work', 'installer-env-root-999999');
    await mkdir(join(dead, 'usr'), { recursive: true });
    await symlink('/nonexistent', join(dead, 'usr/link'));
    const next = await cli(['build', '--config', specFile, '--out', dist, '--cache', cache]);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toContain(`removing the work dir of an interrupted build: ${dead}`);
    expect(await readdir(join(cache, 'work'))).not.toContain('installer-env-root-999999');
  });

  it('names the cache in use, and says when it is new', async () => {
    const cache = join(ws.dir, 'cache-named');
    const r = await cli(['build', '--config', specFile, '--out', join(ws.dir, 'dist-named'), '--cache', cache]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.split('\n')[0]).toBe(`cache: ${cache} (new: the first build bootstraps everything, several minutes)`);
    const again = await cli(['build', '--config', specFile, '--out', join(ws.dir, 'dist-named'), '--cache', cache]);
    expect(again.stderr.split('\n')[0]).toBe(`cache: ${cache} (has images, downloads)`);
    await mkdir(join(ws.dir, 'cache-empty'));
    const empty = await cli(['build', '--config', specFile, '--out', join(ws.dir, 'dist-empty'), '--cache', join(ws.dir, 'cache-empty')]);
    expect(empty.stderr.split('\n')[0]).toBe(`cache: ${join(ws.dir, 'cache-empty')} (empty: the first build bootstraps everything, several minutes)`);
  });
});
