import { chmod, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../build/lib/run.ts';
import { closure, isKept, parseModulesDep } from '../build/installer-env/prune-modules.ts';
import { installerRootArgv } from '../build/installer-env/bootstrap.ts';
import { BUILTIN_DIR, BUILTIN_FILES } from '../build/installer-env/shrink-root.ts';
import { serveFiles } from './helpers/qemu-boot.ts';

describe('built-in installer environment scripts', () => {
  for (const name of Object.keys(BUILTIN_FILES)) {
    it(`${name} is shellcheck-clean`, async () => {
      const r = await run(['shellcheck', '--external-sources', '--', join(BUILTIN_DIR, name)], { nothrow: true });
      expect(r.stdout + r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
    });
  }
});

describe('kernel module pruning', () => {
  const dep = [
    'kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko',
    'kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko',
    'kernel/net/core/failover.ko:',
    'kernel/sound/pci/snd-hda-intel.ko: kernel/sound/core/snd.ko',
    'kernel/sound/core/snd.ko:',
    'kernel/fs/ext4/ext4.ko.xz: kernel/fs/jbd2/jbd2.ko.xz',
    'kernel/fs/jbd2/jbd2.ko.xz:',
  ].join('\n');

  it('keeps listed modules by directory or stem, not by name prefix', () => {
    expect(isKept('kernel/drivers/net/virtio_net.ko')).toBe(true);
    expect(isKept('kernel/fs/ext4/ext4.ko.xz')).toBe(true);
    expect(isKept('kernel/sound/pci/snd-hda-intel.ko')).toBe(false);
    expect(isKept('kernel/drivers/net/virtio_net_extra.ko', ['drivers/net/virtio_net'])).toBe(false);
  });

  it('adds every dependency of a kept module, transitively, and nothing else', () => {
    const kept = closure(parseModulesDep(dep), ['drivers/net/virtio_net', 'fs/ext4']);
    expect([...kept].sort()).toEqual([
      'kernel/drivers/net/net_failover.ko',
      'kernel/drivers/net/virtio_net.ko',
      'kernel/fs/ext4/ext4.ko.xz',
      'kernel/fs/jbd2/jbd2.ko.xz',
      'kernel/net/core/failover.ko',
    ]);
  });
});

describe.runIf(process.getuid?.() === 0)("init: switching to a diskless root (sourced, as far as it runs outside PID 1)", () => {
  /** Sources /init, stubs what would touch this host (udevd, kill, umount) and calls switch_root_if_asked. */
  async function hook(dir: string, o: { request?: string; switchRoot?: boolean }) {
    const bin = join(dir, 'bin');
    await mkdir(bin, { recursive: true });
    if (o.switchRoot !== false) {
      await writeFile(join(bin, 'switch_root'), '#!/bin/sh\necho "SWITCH_ROOT $*"\n');
      await chmod(join(bin, 'switch_root'), 0o755);
    }
    if (o.request !== undefined) await writeFile(join(dir, 'request'), o.request);
    const script = [
      `source ${join(BUILTIN_DIR, 'init')}`,
      // Never the real switch_root (/usr/sbin): on this host it would move /dev, /proc, /sys and /run.
      `PATH=${bin}:/usr/bin`,
      'udevadm() { echo "STUB udevadm $*"; }',
      'kill() { echo "STUB kill $*"; }',
      'umount() { echo "STUB umount $*"; }',
      `switch_root_if_asked ${join(dir, 'request')} || echo "returned $?"`,
      'echo "still here"',
    ].join('\n');
    const r = await run(['bash', '-c', script], { nothrow: true });
    return r.stdout + r.stderr;
  }

  it('does nothing without a request, refuses a root that is no mount point or has no init, and execs switch_root for a good one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pc-init-'));
    const newroot = join(dir, 'newroot');
    await mkdir(newroot);
    try {
      expect(await hook(dir, {})).toBe('still here\n');
      expect(await hook(dir, { request: `${newroot}\n` })).toBe(`portacluster-env: not switching root: ${newroot} is not a mount point\nreturned 1\nstill here\n`);
      await run(['mount', '-t', 'tmpfs', 'pc-test-newroot', newroot]);
      expect(await hook(dir, { request: `${newroot}\n` })).toBe(`portacluster-env: not switching root: ${newroot} has no /sbin/init\nreturned 1\nstill here\n`);
      await mkdir(join(newroot, 'sbin'));
      // An absolute link, as in Debian: it resolves only inside the new root.
      await symlink('/lib/systemd/systemd', join(newroot, 'sbin/init'));
      const out = await hook(dir, { request: `${newroot}\n` });
      expect(out).toMatch(new RegExp(`^portacluster-env: switching root to ${newroot} \\([0-9.]+ s since boot\\)\n`));
      expect(out).toContain('STUB udevadm control --exit\nSTUB umount /tmp\n');
      expect(out.endsWith(`SWITCH_ROOT ${newroot} /sbin/init\n`)).toBe(true);
      // PID 1 must survive a missing switch_root, with udevd still running.
      await rm(join(dir, 'bin/switch_root'));
      expect(await hook(dir, { request: `${newroot}\n`, switchRoot: false })).toBe('portacluster-env: not switching root: no switch_root command here\nreturned 1\nstill here\n');
    } finally {
      await run(['umount', newroot], { nothrow: true });
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('init: fetching the autoruns (sourced, against a real HTTP server and the real curl)', () => {
  it('fetches every name in one curl, in order, skips the absent ones and refuses one without a shebang', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pc-init-fetch-'));
    const server = await serveFiles({
      '/installer/autorun': '#!/bin/sh\necho first\n',
      '/installer/autorun0': 'no shebang\n',
      '/installer/autorun7': '#!/bin/sh\necho seventh\n',
    });
    try {
      const src = `http://127.0.0.1:${server.port}/installer/`;
      // A leftover from an earlier round must not count as fetched.
      await writeFile(join(dir, 'autorun3'), '#!/bin/sh\necho stale\n');
      const r = await run(['bash', '-c', `source ${join(BUILTIN_DIR, 'init')}\nAUTORUN_TMP=${dir}\nfetch_autoruns "$1"`, 'fetch', src], { nothrow: true });
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toBe('autorun\nautorun7\n');
      expect(r.stderr).toBe(
        `portacluster-env: fetched ${src}autorun\nportacluster-env: autorun autorun0 refused: it does not start with a shebang (#!)\nportacluster-env: fetched ${src}autorun7\n`,
      );
      const asked = server.requests.map((q) => `${q.path} ${q.status}`);
      expect(asked).toEqual(['', ...'0123456789ABCDEF'].map((s) => `/installer/autorun${s} ${['', '0', '7'].includes(s) ? 200 : 404}`));
      expect((await readdir(dir)).sort()).toEqual(['autorun', 'autorun0.refused', 'autorun7']);
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('init: ar_suffixes', () => {
  // portacluster's boot entries for the built-in environment pass `ar_suffixes=` (render/installer-append.ts):
  // each profile publishes one script, so the 16 numbered names are never asked for.
  it('with ar_suffixes= (empty) asks for autorun alone; with ar_suffixes=7 for autorun and autorun7', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pc-init-fetch-'));
    const server = await serveFiles({ '/installer/autorun': '#!/bin/sh\necho first\n', '/installer/autorun7': '#!/bin/sh\necho seventh\n' });
    try {
      const src = `http://127.0.0.1:${server.port}/installer/`;
      for (const [word, names] of [['ar_suffixes=', ['autorun']], ['ar_suffixes=7', ['autorun', 'autorun7']]] as const) {
        server.requests.length = 0;
        const script = `source ${join(BUILTIN_DIR, 'init')}\nAUTORUN_TMP=${dir}\nCMDLINE[ar_suffixes]="\${1#ar_suffixes=}"\nfetch_autoruns "$2"`;
        const r = await run(['bash', '-c', script, 'fetch', word, src], { nothrow: true });
        expect(r.exitCode).toBe(0);
        expect(r.stdout).toBe(names.map((n) => `${n}\n`).join(''));
        expect(server.requests.map((q) => `${q.path} ${q.status}`)).toEqual(names.map((n) => `/installer/${n} 200`));
      }
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('installer environment bootstrap', () => {
  it('passes the mirror when the spec names one, and none (mmdebstrap defaults) when it does not', () => {
    expect(installerRootArgv('/w/root', { suite: 'bookworm', mirror: 'http://deb.example/debian' }).slice(-3)).toEqual(['bookworm', '/w/root', 'http://deb.example/debian']);
    // An empty argument would give mmdebstrap an empty sources.list ("apt-get update did not find any indices").
    expect(installerRootArgv('/w/root', { suite: 'bookworm', mirror: null }).slice(-2)).toEqual(['bookworm', '/w/root']);
  });
});
