/**
 * Boot time of the built-in installer environment, from qemu start to the first autorun starting
 * (measured server-side: the autorun's first action is an HTTP request), for three ways of loading it:
 *   direct   qemu -kernel/-initrd (no firmware, no transfer)
 *   http     SeaBIOS → the NIC's iPXE ROM → boot script over TFTP → kernel + initramfs over HTTP
 *   tftp     the same, kernel + initramfs over qemu's built-in TFTP
 * TCG, one vCPU, 1 GiB (the lab nodes' size: the unpacked root needs more than half of 512 MiB), user-mode networking.
 * Usage: node --import tsx bench/installer-env.ts [--runs N] [--modes=direct,http,tftp] [--min-ram]
 */
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { testInstallerEnv } from '../test/helpers/installer-env.ts';
import { bootQemu, serialTail, serveFiles } from '../test/helpers/qemu-boot.ts';
import { workspace } from '../test/helpers/workspace.ts';

type Mode = 'direct' | 'http' | 'tftp';

const args = process.argv.slice(2);
const runsAt = args.indexOf('--runs');
const runs = runsAt >= 0 ? Number(args[runsAt + 1]) || 1 : 1;
const modes = (args.find((a) => a.startsWith('--modes='))?.slice(8).split(',') ?? ['direct', 'http', 'tftp']) as Mode[];

const env = await testInstallerEnv();
const ws = await workspace('pc-bench-env-');
const tftpDir = join(ws.dir, 'tftp');
await mkdir(tftpDir);
await copyFile(env.kernel, join(tftpDir, 'installer-kernel'));
await copyFile(env.initramfs, join(tftpDir, 'installer-initramfs'));

async function once(mode: Mode, memoryMiB: number, timeoutMs = 900_000): Promise<number | null> {
  const files: Record<string, string | { file: string }> = {
    '/pxe/installer-kernel': { file: env.kernel },
    '/pxe/installer-initramfs': { file: env.initramfs },
  };
  const server = await serveFiles(files);
  files['/installer/autorun'] = `#!/bin/sh\ncurl -s -o /dev/null http://10.0.2.2:${server.port}/mark/autorun-started\npoweroff\n`;
  const cmdline = `console=ttyS0,115200 loglevel=4 panic=1 ar_nowait ar_source=${server.guestUrl('installer')}`;
  const base = mode === 'tftp' ? 'tftp://10.0.2.2/' : `http://10.0.2.2:${server.port}/pxe/`;
  await writeFile(join(tftpDir, 'boot.ipxe'), `#!ipxe\nkernel ${base}installer-kernel ${cmdline}\ninitrd ${base}installer-initramfs\nboot\n`);
  const qemuStarted = Date.now();
  try {
    const r = await bootQemu({
      serialLog: join(ws.dir, `${mode}-${memoryMiB}.serial`),
      memoryMiB,
      timeoutMs,
      ...(mode === 'direct' ? { kernel: env.kernel, initramfs: env.initramfs, append: cmdline } : { tftpDir, bootfile: 'boot.ipxe' }),
    });
    const mark = server.requests.find((q) => q.path === '/mark/autorun-started');
    if (!mark) {
      console.error(`${mode} at ${memoryMiB} MiB: the autorun never started; serial tail:\n${serialTail(r.serial, 12)}`);
      return null;
    }
    return (server.startedAt + mark.at - qemuStarted) / 1000;
  } finally {
    await server.close();
  }
}

const rows: string[] = [];
for (const mode of modes) {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const s = await once(mode, 1024);
    console.error(`${mode}: ${s === null ? 'failed' : s.toFixed(1) + ' s'}`);
    if (s !== null) times.push(s);
  }
  const best = times.length ? Math.min(...times).toFixed(1) + ' s' : 'failed';
  rows.push(`| ${mode} | ${best} | ${times.map((t) => t.toFixed(1)).join(', ')} |`);
}
const mib = (n: number) => (n / 1048576).toFixed(1);
console.log(`installer environment ${env.meta.kernelVersion}: initramfs ${mib(env.meta.initramfsBytes)} MiB, root ${mib(env.meta.rootBytes)} MiB unpacked`);
console.log('| load | qemu start → autorun start (best) | runs |\n|---|---|---|\n' + rows.join('\n'));

if (args.includes('--min-ram')) {
  for (const m of [320, 384, 448, 512, 640, 768, 1024]) {
    const s = await once('direct', m, 300_000);
    console.log(`direct boot at -m ${m}: ${s === null ? 'failed' : `autorun started at ${s.toFixed(1)} s`}`);
    if (s !== null) break;
  }
}
await ws.cleanup();
