/**
 * The built-in installer environment boots in QEMU and follows the SystemRescue autorun contract against
 * a directory served on loopback. Pass/fail comes from guest signals: the script's marker on the serial
 * console, the server's request log, and qemu exiting because the guest powered off.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testInstallerEnv, type TestInstallerEnv } from '../helpers/installer-env.ts';
import { bootQemu, serialTail, serveFiles, type AutorunServer, type BootResult } from '../helpers/qemu-boot.ts';
import { workspace } from '../helpers/workspace.ts';

const BOOT_MAC = '52:54:00:12:34:56';
const BOOT_TIMEOUT_MS = 240_000;

let env: TestInstallerEnv;
let ws: Awaited<ReturnType<typeof workspace>>;

beforeAll(async () => {
  env = await testInstallerEnv();
  ws = await workspace('pc-installer-env-');
});
afterAll(async () => {
  await ws?.cleanup();
});

async function boot(name: string, server: AutorunServer, extraAppend: string, macs?: string[]): Promise<BootResult> {
  const append = [
    'console=ttyS0,115200',
    'loglevel=4',
    // A panic reboots at once, which -no-reboot turns into qemu exiting: no waiting for the timeout.
    'panic=1',
    `BOOTIF=01-${BOOT_MAC.replace(/:/g, '-')}`,
    `ar_source=${server.guestUrl('installer').replace(/\/$/, '')}`, // the init adds the trailing /
    extraAppend,
  ].join(' ');
  const r = await bootQemu({
    kernel: env.kernel,
    initramfs: env.initramfs,
    append,
    serialLog: join(ws.dir, `${name}.serial.log`),
    timeoutMs: BOOT_TIMEOUT_MS,
    // The kernel unpacks the initramfs into a tmpfs capped at half the RAM: the 214 MiB root needs more
    // than 512 MiB (it fails with "Initramfs unpacking failed: write error"). The lab's nodes have 1 GiB.
    memoryMiB: 1024,
    macs,
  });
  if (r.timedOut || r.exitCode !== 0) {
    console.error(`qemu ${r.timedOut ? 'timed out' : `exited ${r.exitCode}`}; serial console tail:\n${serialTail(r.serial)}`);
  }
  return r;
}

describe('built-in installer environment', () => {
  it('fetches the autoruns, refuses one without a shebang, runs the other and powers off', async () => {
    const server = await serveFiles({
      '/installer/autorun': [
        '#!/bin/bash',
        'echo "PC-MARKER env=$(cat /run/portacluster-env) systemctl=$(command -v systemctl || echo none)"',
        'echo "PC-DISKTOOLS $(command -v sfdisk wipefs mkfs.ext4 mkfs.xfs mkfs.vfat mdadm lvm curl zstd grub-install | wc -l)"',
        // The hasher common/lib/15-fetch.sh picks when openssl is there (the environment carries it).
        'echo "PC-SHA $(printf abc | openssl dgst -sha256 -r)"',
        'poweroff',
        '',
      ].join('\n'),
      '/installer/autorun0': 'echo this script has no shebang\n',
    });
    try {
      // A second NIC ahead of the boot NIC in PCI order: only BOOTIF= picks the right one.
      const r = await boot('autorun', server, 'ar_nowait', ['52:54:00:00:00:01', BOOT_MAC]);
      expect(r.timedOut).toBe(false);
      expect(r.exitCode).toBe(0);
      expect(r.serial).toMatch(new RegExp(`DHCP on \\S+ \\(${BOOT_MAC}\\)`));
      expect(r.serial).toContain('PC-MARKER env=builtin systemctl=none');
      expect(r.serial).toContain('PC-DISKTOOLS 10');
      expect(r.serial).toContain('PC-SHA ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad *stdin');
      expect(r.serial).toContain('autorun0 refused: it does not start with a shebang');
      expect(r.serial).toContain('reboot: Power down');
      const paths = server.requests.map((q) => `${q.path} ${q.status}`);
      expect(paths).toContain('/installer/autorun 200');
      expect(paths).toContain('/installer/autorun0 200');
      expect(paths).toContain('/installer/autorun1 404');
      expect(paths).toContain('/installer/autorunF 404');
    } finally {
      await server.close();
    }
  });

  it('logs each script and its exit code; ar_ignorefail runs the next script after a failure', async () => {
    const server = await serveFiles({
      '/installer/autorun': '#!/bin/sh\necho first-script-output\nexit 3\n',
      '/installer/autorun5': [
        '#!/bin/bash',
        'echo "PC-LOGS rc=$(cat /var/autorun/log/autorun.return) log=$(cat /var/autorun/log/autorun)"',
        'grep -q first-script-output /var/log/sysrescue-autorun.log && echo PC-SHARED-LOG-OK',
        'reboot',
        '',
      ].join('\n'),
    });
    try {
      const r = await boot('ignorefail', server, 'ar_nowait ar_ignorefail');
      expect(r.timedOut).toBe(false);
      expect(r.exitCode).toBe(0);
      expect(r.serial).toContain('autorun autorun exited 3');
      expect(r.serial).toContain('PC-LOGS rc=3 log=first-script-output');
      expect(r.serial).toContain('PC-SHARED-LOG-OK');
      expect(r.serial).toContain('portacluster-env: reboot');
    } finally {
      await server.close();
    }
  });
});
