/**
 * A user's own spec, as a new user keeps it: a portacluster.config.ts in a directory of theirs under /tmp
 * (no package.json, no node_modules), importing defineConfig from 'portacluster', edited there, and every
 * command run from that directory through bin/portacluster.js with no --config: validate, build, verify,
 * status, reimage, rescue, normal, watch, deploy.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeSysrcdIso } from './helpers/make-iso.ts';
import { makeTinyRootfs } from './helpers/tiny-rootfs.ts';
import { workspace, FIXED_EPOCH } from './helpers/workspace.ts';
import { baseSpec } from './fixtures/specs.ts';

const BIN = resolve('bin/portacluster.js');
let ws: Awaited<ReturnType<typeof workspace>>;
let home: string;

function pc(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: home, env: { ...process.env, SOURCE_DATE_EPOCH: String(FIXED_EPOCH), PORTACLUSTER_STATE: join(home, 'state.json') } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
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

afterAll(() => ws.cleanup());

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
  }, 240_000);
});
