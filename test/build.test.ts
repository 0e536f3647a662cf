/**
 * The whole build through the real CLI, on small fixtures: a prepared root tree as the golden image and a
 * SystemRescue-layout ISO built here. Checks the tree with the real tools and the failure modes.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readlink, readdir, rm, writeFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capture, run } from '../build/lib/run.ts';
import { sha256File } from '../build/lib/hash.ts';
import { checkHost } from '../build/lib/host.ts';
import { checkBootstrapHost } from '../build/stages/bootstrap-image.ts';
import { archBackend } from '../build/image/arch.ts';
import { HostToolError } from '../build/lib/errors.ts';
import { makeSysrcdIso } from './helpers/make-iso.ts';
import { startFileServer } from './helpers/file-server.ts';
import { workspace, FIXED_EPOCH } from './helpers/workspace.ts';
import { baseSpec } from './fixtures/specs.ts';
import { stageNeeds } from '../build/pipeline.ts';
import { assembleServerTree } from '../build/lifecycle/deploy-servers.ts';
import { planCluster } from '../build/plan/plan.ts';
import { validateSpec } from '../build/spec/validate.ts';

const CLI = resolve('build/cli/main.ts');
const KVER = '6.1.0-99-amd64';

let ws: Awaited<ReturnType<typeof workspace>>;
let specFile: string;
let cache: string;

function cli(args: string[], o: { env?: NodeJS.ProcessEnv; cwd?: string; killWhen?: (stderr: string) => boolean } = {}) {
  return new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((done) => {
    const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), CLI, ...args], { cwd: o.cwd, env: { ...process.env, SOURCE_DATE_EPOCH: String(FIXED_EPOCH), ...o.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => {
      stderr += b;
      if (o.killWhen?.(stderr)) child.kill('SIGKILL');
    });
    child.on('close', (code, signal) => done({ code, signal, stdout, stderr }));
  });
}

async function rootfs(dir: string, o: { kernel?: boolean } = {}) {
  await mkdir(join(dir, 'boot'), { recursive: true });
  await mkdir(join(dir, 'lib/modules', KVER, 'kernel'), { recursive: true });
  await mkdir(join(dir, 'etc'), { recursive: true });
  await writeFile(join(dir, 'etc/os-release'), 'ID=debian\n');
  await writeFile(join(dir, 'lib/modules', KVER, 'modules.dep'), '');
  if (o.kernel !== false) {
    await writeFile(join(dir, `boot/vmlinuz-${KVER}`), Buffer.alloc(4096, 1));
    await writeFile(join(dir, `boot/initrd.img-${KVER}`), Buffer.alloc(2048, 2));
  }
}

async function writeSpec(file: string, o: { rootfs: string; iso: { path: string; sha256: string } }) {
  const spec = baseSpec();
  spec.image = { name: 'tiny', distro: 'debian', release: 'bookworm', rootfs: o.rootfs };
  spec.boot.os.name = 'debian';
  spec.nodes[1].profile = 'os';
  spec.installerEnv = { type: 'systemrescue', path: o.iso.path, sha256: o.iso.sha256 };
  await writeFile(file, JSON.stringify(spec, null, 2));
}

/** Every entry with its type, mode, size, link target and (for files) sha256, SHA256SUMS and manifest.json included. */
async function snapshot(dir: string): Promise<string> {
  const entries = await capture(['find', dir, '-printf', '%P %y %m %s %l\\n']);
  const sums = await capture(['bash', '-c', 'cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum', 'snapshot', dir]);
  return entries.split('\n').sort().join('\n') + sums;
}

let isoSha256: string;

beforeAll(async () => {
  ws = await workspace('pc-build-');
  await rootfs(join(ws.dir, 'rootfs'));
  const iso = await makeSysrcdIso(join(ws.dir, 'iso'), 'modern');
  isoSha256 = iso.sha256;
  specFile = join(ws.dir, 'cluster.json');
  cache = join(ws.dir, 'cache');
  await writeSpec(specFile, { rootfs: join(ws.dir, 'rootfs'), iso });
});
afterAll(() => ws.cleanup());

describe('portacluster build', () => {
  let dist: string;

  it('builds a tree that sha256sum -c and portacluster verify accept', async () => {
    dist = join(ws.dir, 'dist');
    const r = await cli(['build', '--config', specFile, '--out', dist, '--cache', cache, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.ok).toBe(true);
    const check = await run(['sha256sum', '--check', '--strict', 'SHA256SUMS'], { cwd: dist });
    expect(check.stdout).toMatch(/manifest\.json: OK/);
    expect(check.stdout).not.toMatch(/FAILED/);
    const v = await cli(['verify', dist]);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/files verified/);
  });

  it('ships the spec in etc/, where the lifecycle commands on node0 find it without --config', async () => {
    expect(JSON.parse(await readFile(join(dist, 'etc/portacluster.json'), 'utf8'))).toEqual(JSON.parse(await readFile(specFile, 'utf8')));
    // From a directory without a spec, as on node0: --root names the served tree and the spec in it.
    const r = await cli(['status', '--root', dist, '--state', join(ws.dir, 'state.json'), '--json'], { cwd: ws.dir, env: { PORTACLUSTER_CONFIG: '' } });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).nodes.map((n: { name: string; profile: string }) => `${n.name}=${n.profile}`)).toEqual(['node1=installer', 'node2=debian']);
    // The table a person reads: one line per node, its MAC and what it boots now.
    const t = await cli(['status', '--root', dist, '--state', join(ws.dir, 'state.json')], { cwd: ws.dir, env: { PORTACLUSTER_CONFIG: '' } });
    expect(t.stdout.split('\n').map((l) => l.split(/\s+/).slice(0, 5).join(' '))).toEqual([
      'NODE MAC PROFILE STATE PHASE',
      // MACs in their canonical spelling, whatever the spec wrote.
      'node1 c0:3f:d5:60:e5:a1 installer - -',
      'node2 c0:3f:d5:60:cd:8b debian - -',
      '',
    ]);
  });

  it('lays out pxe/, the links, the image and the scripts as /srv/public expects', async () => {
    for (const f of ['pxe/pxelinux.0', 'pxe/ldlinux.c32', 'pxe/syslinux.efi', 'pxe/ldlinux.e64', 'pxe/debian-kernel', 'pxe/debian-initramfs', 'pxe/sysrcd-vmlinuz', 'pxe/sysrcd-sysresccd.img', 'sysrcd/sysresccd/x86_64/airootfs.sfs', 'etc/dnsmasq.conf', 'etc/nginx.conf', 'installer/autorun', 'rescue/autorun', 'rescue/sysrescue.yaml'])
      expect((await stat(join(dist, f))).isFile(), f).toBe(true);
    expect(await readlink(join(dist, 'pxe/pxelinux.cfg/default'))).toBe('installer');
    expect(await readlink(join(dist, 'pxe/pxelinux.cfg/01-c0-3f-d5-60-e5-a1'))).toBe('installer');
    expect(await readlink(join(dist, 'pxe/pxelinux.cfg/01-c0-3f-d5-60-cd-8b'))).toBe('debian');
    const images = await readdir(join(dist, 'images'));
    expect(images.filter((f) => f.endsWith('.tar.zst'))).toHaveLength(1);
    const manifest = JSON.parse(await readFile(join(dist, 'manifest.json'), 'utf8'));
    expect(manifest.artifacts.os.kernelVersion).toBe(KVER);
    expect(manifest.artifacts.image.file).toBe(`images/${images.find((f) => f.endsWith('.tar.zst'))}`);
    expect(manifest.links).toContainEqual({ path: 'pxe/pxelinux.cfg/default', target: 'installer' });
    const autorun = await readFile(join(dist, 'installer/autorun'), 'utf8');
    expect(autorun).toContain(`PC_IMAGE_SHA256='${manifest.artifacts.image.sha256}'`);
    expect(autorun.startsWith('#!/bin/bash\n')).toBe(true);
    expect((await stat(join(dist, 'installer/autorun'))).mode & 0o777).toBe(0o755);
    // The installer entry is SystemRescue's modern one, pointing at the admin IP.
    const installer = await readFile(join(dist, 'pxe/pxelinux.cfg/installer'), 'utf8');
    expect(installer).toContain('archiso_http_srv=http://192.168.10.10/sysrcd/');
    expect(installer).toContain('ar_source=http://192.168.10.10/installer/');
  });

  it("with boot servers: each one's own tree under etc/servers/<name>/ (configs, boot configs, scripts naming it), checksummed", async () => {
    const spec = JSON.parse(await readFile(specFile, 'utf8'));
    spec.bootServers = [{ name: 'rack1-boot', backboneIp: '192.168.10.21', interface: 'eno2', ip: '10.100.1.1', rangeStart: '10.100.1.100', rangeEnd: '10.100.1.200', nodes: ['node2'] }];
    const file = join(ws.dir, 'cluster-servers.json');
    await writeFile(file, JSON.stringify(spec, null, 2));
    const out = join(ws.dir, 'dist-servers');
    const r = await cli(['build', '--config', file, '--out', out, '--cache', cache]);
    expect(r.code, r.stderr).toBe(0);
    const own = join(out, 'etc/servers/rack1-boot');
    const dnsmasq = await readFile(join(own, 'etc/dnsmasq.conf'), 'utf8');
    expect(dnsmasq).toContain('interface=eno2');
    expect(dnsmasq.match(/^dhcp-host=.*$/gm)).toEqual(['dhcp-host=c0:3f:d5:60:cd:8b,node2']);
    expect(await readFile(join(own, 'etc/nginx.conf'), 'utf8')).toContain('listen 10.100.1.1:80 default_server;');
    // Its boot configs and scripts name the server; its per-MAC links are its node's only.
    expect(await readFile(join(own, 'pxe/pxelinux.cfg/installer'), 'utf8')).toContain('ar_source=http://10.100.1.1/installer/');
    expect(await readFile(join(own, 'pxe/pxelinux.cfg/rescue'), 'utf8')).toContain('sysrescuecfg=http://10.100.1.1/rescue/sysrescue.yaml');
    expect(await readFile(join(own, 'installer/autorun'), 'utf8')).toMatch(/PC_IMAGE_URL='http:\/\/10\.100\.1\.1\/images\/tiny-[0-9a-f]{16}\.tar\.zst'/);
    expect((await readdir(join(own, 'pxe/pxelinux.cfg'))).filter((n) => n.startsWith('01-'))).toEqual(['01-c0-3f-d5-60-cd-8b']);
    // node2's profile is the OS (the spec's profile: 'os').
    expect(await readlink(join(own, 'pxe/pxelinux.cfg/01-c0-3f-d5-60-cd-8b'))).toBe('debian');
    // node0's own still name node0.
    expect(await readFile(join(out, 'installer/autorun'), 'utf8')).toContain("PC_HTTP_BASE='http://192.168.10.10'");
    const sums = await readFile(join(out, 'SHA256SUMS'), 'utf8');
    for (const f of ['etc/dnsmasq.conf', 'etc/nginx.conf', 'installer/autorun', 'pxe/pxelinux.cfg/installer', 'pxe/ipxe/boot.ipxe']) expect(sums).toContain(` etc/servers/rack1-boot/${f}\n`);
    // The copy deploy assembles for the server holds every kernel and initrd its profiles load.
    const copy = join(ws.dir, 'rack1-copy');
    await assembleServerTree(out, 'rack1-boot', copy);
    for (const profile of ['installer', 'rescue', 'debian']) {
      const text = await readFile(join(copy, 'pxe/pxelinux.cfg', profile), 'utf8');
      const paths = [...text.matchAll(/^\s+(?:LINUX|INITRD) (.+)$/gm)].flatMap((m) => m[1]!.split(','));
      for (const p of paths) expect((await stat(join(copy, 'pxe', p))).isFile(), `${profile}: ${p}`).toBe(true);
    }
    await run(['sh', '-c', 'cd -- "$1" && sha256sum --quiet --strict -c SHA256SUMS', 'sh', copy]);
  });

  it('the same spec gives the same SHA256SUMS', async () => {
    const again = join(ws.dir, 'dist-again');
    // A cache of its own: the tarball is really packed again, not copied from the first build's cache.
    const r = await cli(['build', '--config', specFile, '--out', again, '--cache', join(ws.dir, 'cache-again'), '-q']);
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(join(again, 'SHA256SUMS'), 'utf8')).toBe(await readFile(join(dist, 'SHA256SUMS'), 'utf8'));
    await rm(again, { recursive: true });
  });

  it('image mode: the filesystem image beside the tarball, in the manifest and the installer', async () => {
    const spec = JSON.parse(await readFile(specFile, 'utf8'));
    spec.image.installMode = 'image';
    const imageSpec = join(ws.dir, 'image-mode.json');
    await writeFile(imageSpec, JSON.stringify(spec));
    const out = join(ws.dir, 'dist-image');
    const r = await cli(['build', '--config', imageSpec, '--out', out, '--cache', cache, '-q']);
    expect(r.code, r.stderr).toBe(0);
    const images = (await readdir(join(out, 'images'))).sort((x, y) => (x.includes('.ext4.') ? 0 : 1) - (y.includes('.ext4.') ? 0 : 1) || (x < y ? -1 : 1));
    expect(images).toEqual([expect.stringMatching(/^tiny-[0-9a-f]{16}\.ext4\.zst$/), expect.stringMatching(/\.ext4\.zst\.sha256$/), expect.stringMatching(/^tiny-[0-9a-f]{16}\.tar\.zst$/), expect.stringMatching(/\.tar\.zst\.sha256$/)]);
    await run(['sha256sum', '--check', '--strict', 'SHA256SUMS'], { cwd: out });
    await run(['sha256sum', '--check', '--strict', `${images[0]}.sha256`], { cwd: join(out, 'images') });
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8'));
    const fs = manifest.artifacts.fsImage;
    expect(fs).toMatchObject({ file: `images/${images[0]}`, size: (await stat(join(out, 'images', images[0]!))).size });
    expect(fs.imageBytes % 4096).toBe(0);
    const autorun = await readFile(join(out, 'installer/autorun'), 'utf8');
    expect(autorun).toContain(`PC_INSTALL_MODE='image'`);
    expect(autorun).toContain(`PC_FSIMAGE_URL='http://192.168.10.10/${fs.file}'`);
    expect(autorun).toContain(`PC_FSIMAGE_SHA256='${fs.sha256}'`);
    expect(autorun).toContain(`PC_FSIMAGE_BYTES='${fs.imageBytes}'`);
    // The tarball is the same artifact in both modes.
    const tarballManifest = JSON.parse(await readFile(join(dist, 'manifest.json'), 'utf8'));
    expect(manifest.artifacts.image.sha256).toBe(tarballManifest.artifacts.image.sha256);
    expect(tarballManifest.artifacts.fsImage).toBeUndefined();
    await rm(out, { recursive: true });
  });

  it('a stage failing midway leaves the previous dist/ byte-identical', async () => {
    const before = await snapshot(dist);
    const broken = join(ws.dir, 'rootfs-nokernel');
    await rootfs(broken, { kernel: false });
    const brokenSpec = join(ws.dir, 'broken.json');
    const spec = JSON.parse(await readFile(specFile, 'utf8'));
    spec.image.rootfs = broken;
    await writeFile(brokenSpec, JSON.stringify(spec));
    const r = await cli(['build', '--config', brokenSpec, '--out', dist, '--cache', cache]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/kernel/i);
    expect(await snapshot(dist)).toBe(before);
    expect((await readdir(ws.dir)).filter((e) => e.includes('staging'))).toEqual([]);
  });

  it('a build killed midway leaves dist/ as it was, and the next build cleans up after it', async () => {
    const before = await snapshot(dist);
    const r = await cli(['build', '--config', specFile, '--out', dist, '--cache', cache], { killWhen: (s) => s.includes('==> copy boot loaders') });
    expect(r.signal).toBe('SIGKILL');
    expect(await snapshot(dist)).toBe(before);
    expect((await readdir(ws.dir)).some((e) => e.startsWith('.dist.staging-'))).toBe(true);
    const again = await cli(['build', '--config', specFile, '--out', dist, '--cache', cache, '-q']);
    expect(again.code, again.stderr).toBe(0);
    expect((await readdir(ws.dir)).filter((e) => e.startsWith('.dist.'))).toEqual([]);
    expect(await snapshot(dist)).toBe(before);
  });

  it('an invalid spec exits 2 with every problem and does not touch dist/', async () => {
    const before = await snapshot(dist);
    const bad = JSON.parse(await readFile(specFile, 'utf8'));
    bad.nodes[0].mac = 'c0:3f:d5';
    bad.nodes[1].ip = '192.168.10.150';
    const badFile = join(ws.dir, 'bad.json');
    await writeFile(badFile, JSON.stringify(bad));
    const r = await cli(['build', '--config', badFile, '--out', dist, '--cache', cache]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('nodes[0].mac: not a MAC address (got "c0:3f:d5")');
    expect(r.stderr).toContain('nodes[1].ip: 192.168.10.150 is inside the dynamic range');
    expect(await snapshot(dist)).toBe(before);
    const j = await cli(['build', '--config', badFile, '--out', dist, '--cache', cache, '--json']);
    expect(j.code).toBe(2);
    expect(JSON.parse(j.stdout)).toMatchObject({ ok: false, exitCode: 2, error: { kind: 'SpecError', issues: [{ path: 'nodes[0].mac' }, { path: 'nodes[1].ip' }] } });
  });

  it('verify catches a changed, a missing and an extra file', async () => {
    const copy = join(ws.dir, 'tampered');
    await run(['cp', '-a', dist, copy]);
    await writeFile(join(copy, 'etc/nginx.conf'), 'tampered\n');
    await rm(join(copy, 'pxe/ldlinux.c32'));
    await writeFile(join(copy, 'extra.txt'), 'x');
    const r = await cli(['verify', copy, '--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).problems).toEqual([
      { path: 'etc/nginx.conf', problem: 'checksum mismatch' },
      { path: 'extra.txt', problem: 'not listed in SHA256SUMS' },
      { path: 'pxe/ldlinux.c32', problem: 'missing' },
    ]);
  });
});

describe('portacluster build with a legacy SystemRescueCd ISO fetched by URL', () => {
  it('downloads, verifies and extracts it, and the profiles boot it with netboot=', async () => {
    const iso = await makeSysrcdIso(join(ws.dir, 'legacy-iso'), 'legacy');
    const server = await startFileServer(await readFile(iso.path));
    try {
      const spec = JSON.parse(await readFile(specFile, 'utf8'));
      spec.installerEnv = { type: 'systemrescue', url: server.url, sha256: iso.sha256, keymap: 'de' };
      const file = join(ws.dir, 'legacy.json');
      await writeFile(file, JSON.stringify(spec));
      const out = join(ws.dir, 'dist-legacy');
      const r = await cli(['build', '--config', file, '--out', out, '--cache', join(ws.dir, 'cache-legacy'), '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).artifacts.installerEnv).toMatchObject({ kind: 'sysrcd-legacy' });
      for (const f of ['pxe/sysrcd-kernel', 'pxe/sysrcd-initram.igz', 'sysrcd/sysrcd.dat']) expect((await stat(join(out, f))).isFile(), f).toBe(true);
      const installer = await readFile(join(out, 'pxe/pxelinux.cfg/installer'), 'utf8');
      expect(installer).toContain('LINUX /sysrcd-kernel\n        INITRD /sysrcd-initram.igz\n');
      expect(installer).toContain('APPEND docache dodhcp setkmap=de netboot=http://192.168.10.10/sysrcd/sysrcd.dat ar_source=http://192.168.10.10/installer/ ar_nowait');
      expect(await readFile(join(out, 'pxe/pxelinux.cfg/rescue'), 'utf8')).toContain('ar_source=http://192.168.10.10/rescue/ ar_nowait');
      await run(['sha256sum', '--quiet', '--strict', '-c', 'SHA256SUMS'], { cwd: out });
      // The ISO came over HTTP once; a second build takes it from the cache by digest.
      const again = await cli(['build', '--config', file, '--out', out, '--cache', join(ws.dir, 'cache-legacy'), '-q']);
      expect(again.code, again.stderr).toBe(0);
      expect(server.requests).toHaveLength(1);
    } finally {
      await server.close();
    }
  });
});

describe('a full disk', () => {
  it('fails the build with the path and ENOSPC, leaves dist/ as it was and nothing half-made in the cache', async () => {
    const full = join(ws.dir, 'full');
    await mkdir(full, { recursive: true });
    // 3 MiB of tmpfs for the cache, the staging dir and dist/; the image alone needs more.
    await run(['mount', '-t', 'tmpfs', '-o', 'size=3m', 'portacluster-test-full', full]);
    try {
      const big = join(ws.dir, 'rootfs-big');
      await rootfs(big);
      await writeFile(join(big, 'etc/blob'), randomBytes(6 << 20));
      const spec = JSON.parse(await readFile(specFile, 'utf8'));
      spec.image.rootfs = big;
      const file = join(ws.dir, 'big.json');
      await writeFile(file, JSON.stringify(spec));
      const out = join(full, 'dist');
      await mkdir(out);
      await writeFile(join(out, 'previous'), 'the previous dist/\n');
      // A directory portacluster did not build: --force-out, since the point here is the full disk.
      const r = await cli(['build', '--config', file, '--out', out, '--cache', join(full, 'cache'), '--force-out']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/no space left on device/i);
      expect(r.stderr).toContain(full);
      expect(await readdir(full)).toEqual(['cache', 'dist']);
      expect(await readdir(out)).toEqual(['previous']);
      // Nothing half-made in the cache (work dirs of the failed build are gone too). The installer
      // environment is built beside the image, so its ISO may have finished downloading: a complete,
      // verified entry is fine; no temp or partial file is.
      const { stdout } = await run(['find', join(full, 'cache'), '-type', 'f']);
      const files = stdout.trim().split('\n').filter(Boolean).map((f) => f.slice(join(full, 'cache').length + 1));
      expect(files.filter((f) => f !== `downloads/by-sha256/${isoSha256}`)).toEqual([]);
      for (const f of files) expect(await sha256File(join(full, 'cache', f))).toBe(isoSha256);
    } finally {
      await run(['umount', full]);
    }
  });
});

describe('host check', () => {
  it('names every missing tool with the stage that needs it and its packages, before anything is written', async () => {
    const empty = join(ws.dir, 'empty-path');
    await mkdir(empty, { recursive: true });
    const err = await checkHost([{ stage: 'extract-iso', needs: ['xorriso'] }, { stage: 'bootstrap-image', needs: ['mmdebstrap', 'zstd'] }], empty).catch((e) => e);
    expect(err).toBeInstanceOf(HostToolError);
    expect(err.message).toContain('xorriso: needed by stage "extract-iso" to extract the SystemRescue ISO without mounting it\n    Debian/Ubuntu: apt-get install xorriso    Arch: pacman -S libisoburn');
    expect(err.message).toContain('mmdebstrap: needed by stage "bootstrap-image"');
    expect(err.message).toContain('zstd: needed by stage "bootstrap-image"');
  });

  it('image mode needs e2fsprogs', async () => {
    const s = baseSpec();
    s.image.installMode = 'image';
    const needs = stageNeeds(planCluster(validateSpec(s)));
    expect(needs).toContainEqual({ stage: 'pack-fsimage', needs: ['mke2fs', 'e2fsck', 'debugfs', 'dumpe2fs', 'zstd'] });
    expect(stageNeeds(planCluster(validateSpec(baseSpec()))).map((n) => n.stage)).not.toContain('pack-fsimage');
    const err = await checkHost(needs, join(ws.dir, 'empty-path')).catch((e) => e);
    expect(err.message).toContain('mke2fs: needed by stage "pack-fsimage" to make the golden image as an ext4 filesystem image (image.installMode "image")\n    Debian/Ubuntu: apt-get install e2fsprogs');
  });

  it('each stage owns its tools, in the one vocabulary: the bootstrap backend and the host check agree', async () => {
    const e = await checkBootstrapHost(archBackend, { path: join(ws.dir, 'empty-path'), uid: 1000 }).then(() => new Error('passed'), (x: unknown) => x as Error);
    expect(e).toBeInstanceOf(HostToolError);
    expect(e.message).toMatch(/bootstrap-image must run as root/);
    expect(e.message).toContain('pacman-key: needed by stage "bootstrap-image" to verify Arch packages\n    Debian/Ubuntu: apt-get install pacman-package-manager    Arch: pacman -S pacman');
    const s = baseSpec();
    expect(stageNeeds(planCluster(validateSpec(s)))).toContainEqual({ stage: 'bootstrap-image', needs: ['pacstrap', 'pacman', 'pacmanKey'] });
  });

  it('passes when the tools are there', async () => {
    const found = await checkHost([{ stage: 'extract-iso', needs: ['xorriso', 'pxelinux'] }]);
    expect(found.xorriso).toMatch(/xorriso$/);
    expect(found.pxelinux).toMatch(/pxelinux\.0$/);
  });
});
