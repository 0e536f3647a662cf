import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PathEscapeError, RenderError } from '../build/lib/errors.ts';
import { insideDir } from '../build/lib/inside-dir.ts';
import { memoryLogger } from '../build/lib/log.ts';
import { packImage } from '../build/stages/pack-image.ts';
import { packSquashfs } from '../build/stages/pack-squashfs.ts';
import { argvValue, dnsmasqValue, nginxValue, pacmanSection } from '../build/lib/escape.ts';
import { installerRootArgv } from '../build/installer-env/bootstrap.ts';
import { mmdebstrapArgv } from '../build/image/debian.ts';
import { pacmanConf } from '../build/image/arch.ts';
import { renderDnsmasqConf } from '../build/render/dnsmasq.ts';
import { renderNginxConf } from '../build/render/nginx.ts';
import { renderIpxeProfile } from '../build/render/ipxe.ts';
import { planCluster } from '../build/plan/plan.ts';
import { validateSpec } from '../build/spec/validate.ts';
import { baseSpec } from './fixtures/specs.ts';
import type { ArchImage, DebianImage } from '../build/plan/plan.ts';

// The renderers' own refusals, for callers that did not go through validateSpec (the schema refuses all
// of these first: test/spec.test.ts, test/spec-fuzz.test.ts).
const plan = () => planCluster(validateSpec(baseSpec()));

describe('renderers refuse what would break out of their target', () => {
  it('dnsmasq.conf: a cluster name with a newline cannot add a directive', () => {
    const p = plan();
    p.cluster = 'lab\ndhcp-script=/tmp/pwn.sh\n#';
    expect(() => renderDnsmasqConf(p)).toThrow(RenderError);
    expect(() => renderDnsmasqConf(p)).toThrow(/dnsmasq\.conf: cluster must stay on its comment line: it contains a newline/);
  });

  it('dnsmasq.conf: a comma cannot add a dhcp-host field', () => {
    const p = plan();
    p.nodes[0]!.name = 'node1,192.168.10.99';
    expect(() => renderDnsmasqConf(p)).toThrow(/dnsmasq\.conf: name must be one dnsmasq value: it contains ","/);
    expect(() => dnsmasqValue('x', 'a#b')).toThrow(RenderError);
  });

  it('nginx.conf: a phone-home path cannot close the location block', () => {
    const p = plan();
    p.phoneHome.path = '/r/ { } location /x';
    expect(() => renderNginxConf(p)).toThrow(/nginx\.conf: phoneHome\.path must be one nginx word: it contains a space/);
    expect(() => nginxValue('root', '/srv/$host')).toThrow(/contains "\$"/);
  });

  it('iPXE: a kernel argument cannot chain another command', () => {
    expect(() => renderIpxeProfile({ label: 'x', kernel: 'k', initrds: [], append: 'quiet || shell' }, { httpBase: 'http://10.0.0.1' })).toThrow(/iPXE: kernel arguments must be one line of plain words: it contains "\|"/);
  });

  it('pacman.conf: a repo name cannot open a section that turns signatures off', () => {
    const spec = { name: 'arch', distro: 'arch', release: 'rolling', packages: [], mirror: 'https://m/$repo/os/$arch', repos: ['core]\nSigLevel = Never\n[extra'] } satisfies ArchImage;
    expect(() => pacmanConf(spec, { cacheDir: '/c', gpgDir: '/g' })).toThrow(/pacman\.conf: image\.repos must be a bare repository name: it contains a newline/);
    expect(() => pacmanSection('repo', 'core]')).toThrow(/contains "\]"/);
  });

  it('mmdebstrap: "--" ends the options and a leading "-" is refused (image and installer environment)', () => {
    const spec: DebianImage = { name: 'deb', distro: 'debian', release: 'bookworm', packages: [], mirror: null, components: ['main'] };
    const argv = mmdebstrapArgv(spec, '/w/root');
    expect(argv.slice(-3)).toEqual(['--', 'bookworm', '/w/root']);
    expect(() => mmdebstrapArgv({ ...spec, mirror: '--setup-hook=touch /tmp/x' }, '/w/root')).toThrow(/mmdebstrap: image\.mirror must be one argument/);
    expect(() => mmdebstrapArgv({ ...spec, mirror: '--setup-hook=id' }, '/w/root')).toThrow(/would be read as an option/);
    expect(installerRootArgv('/w/root', { suite: 'bookworm', mirror: null }).slice(-3)).toEqual(['--', 'bookworm', '/w/root']);
    expect(() => installerRootArgv('/w/root', { suite: 'bookworm', mirror: '--setup-hook=id' })).toThrow(/mmdebstrap: installerEnv\.mirror must not be empty or start with "-"/);
    expect(() => argvValue('pacstrap', 'package', '-Syu')).toThrow(RenderError);
  });
});

describe('insideDir', () => {
  it('joins a name inside its directory and refuses one that climbs out', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pc-inside-'));
    try {
      expect(insideDir(dir, 'images/arch-0123.tar.zst')).toBe(join(dir, 'images/arch-0123.tar.zst'));
      for (const bad of ['../arch.tar.zst', '../../etc/x', '/etc/passwd', '.', 'a/../..', 'x\0y'])
        expect(() => insideDir(dir, bad, 'pack-image'), bad).toThrow(PathEscapeError);
      expect(() => insideDir(dir, '../x', 'pack-image')).toThrow(/^pack-image: "\.\.\/x" would not be inside /);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('packing an image whose name climbs out of the output directory', () => {
  it('pack-image and pack-squashfs refuse before writing anything', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pc-escape-'));
    try {
      const root = join(dir, 'root');
      await mkdir(join(root, 'etc'), { recursive: true });
      await writeFile(join(root, 'etc/hostname'), 'x\n');
      const outDir = join(dir, 'out', 'images');
      await mkdir(outDir, { recursive: true });
      const o = { outDir, name: '../../escape', sourceDateEpoch: 0, zstdLevel: 3, log: memoryLogger() };
      await expect(packImage(root, o)).rejects.toThrow(PathEscapeError);
      await expect(packSquashfs(root, o)).rejects.toThrow(PathEscapeError);
      expect((await readdir(dir)).sort()).toEqual(['out', 'root']);
      expect(await readdir(outDir)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
