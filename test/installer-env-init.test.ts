import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../build/lib/run.ts';
import { closure, isKept, parseModulesDep } from '../build/installer-env/prune-modules.ts';
import { installerRootArgv } from '../build/installer-env/bootstrap.ts';
import { BUILTIN_DIR, BUILTIN_FILES } from '../build/installer-env/shrink-root.ts';

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

describe('installer environment bootstrap', () => {
  it('passes the mirror when the spec names one, and none (mmdebstrap defaults) when it does not', () => {
    expect(installerRootArgv('/w/root', { suite: 'bookworm', mirror: 'http://deb.example/debian' }).slice(-3)).toEqual(['bookworm', '/w/root', 'http://deb.example/debian']);
    // An empty argument would give mmdebstrap an empty sources.list ("apt-get update did not find any indices").
    expect(installerRootArgv('/w/root', { suite: 'bookworm', mirror: '' }).slice(-2)).toEqual(['bookworm', '/w/root']);
  });
});
