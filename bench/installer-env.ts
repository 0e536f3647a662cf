/**
 * Boot time of the built-in installer environment, from qemu start to the first autorun starting
 * (measured server-side: the autorun's first action is an HTTP request), for three ways of loading it:
 *   direct   qemu -kernel/-initrd (no firmware, no transfer)
 *   http     SeaBIOS → the NIC's iPXE ROM → boot script over TFTP → kernel + initramfs over HTTP
 *   tftp     the same, kernel + initramfs over qemu's built-in TFTP
 * TCG, one vCPU, 1 GiB (the lab nodes' size: the unpacked root needs more than half of 512 MiB), user-mode networking.
 * The issue's goal is absolute (autorun ≤ 9 s after qemu starts, direct; initramfs ≤ 25 MiB): recorded as
 * ratios to those goals, so `npm run bench`'s table shows them beside the ratios to floors.
 *   --sizes               what each package and module directory costs in the root (bench/lib/env-sizes.ts)
 *   --packs=zstd-19,lz4-9 the same root repacked each way and booted in each mode: load + unpack time
 * Usage: node --import tsx bench/installer-env.ts [--runs N] [--modes=direct,http,tftp] [--sizes] [--packs=…] [--min-ram]
 */
import { copyFile, mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { packInitramfs, ZSTD_LEVEL } from '../build/installer-env/pack-initramfs.ts';
import { installerBootEntry } from '../build/render/installer-append.ts';
import { testInstallerEnv } from '../test/helpers/installer-env.ts';
import { bootQemu, serialTail, serveFiles } from '../test/helpers/qemu-boot.ts';
import { FIXED_EPOCH, workspace } from '../test/helpers/workspace.ts';
import { formatSizes, measureRoot, unpackInitramfs } from './lib/env-sizes.ts';
import { recordRatio } from './lib/ratios.ts';

type Mode = 'direct' | 'http' | 'tftp';

const args = process.argv.slice(2);
const runsAt = args.indexOf('--runs');
const runs = runsAt >= 0 ? Number(args[runsAt + 1]) || 1 : 1;
const modes = (args.find((a) => a.startsWith('--modes='))?.slice(8).split(',').filter(Boolean) ?? ['direct', 'http', 'tftp']) as Mode[];
const packs = args.find((a) => a.startsWith('--packs='))?.slice(8).split(',') ?? [];

/** The issue's goals for the environment. */
const GOAL_SECONDS = 9;
const GOAL_MIB = 25;

/** `zstd-19`, `xz-6`, `lz4-9`… → the compressor argv (lz4's legacy frame: the only one the kernel reads). */
function compressor(name: string): string[] {
  const m = /^(zstd|xz|lz4|gzip)-(\d+)$/.exec(name);
  if (!m) throw new Error(`--packs: ${name} is not zstd-N, xz-N, lz4-N or gzip-N`);
  const level = `-${m[2]}`;
  if (m[1] === 'zstd') return ['zstd', '-q', level, '-T0'];
  if (m[1] === 'xz') return ['xz', '-q', level, '-T0', '--check=crc32'];
  if (m[1] === 'lz4') return ['lz4', '-q', '-l', level];
  return ['gzip', '-n', level];
}

const env = await testInstallerEnv();
const ws = await workspace('pc-bench-env-');
const mib = (n: number) => (n / 1048576).toFixed(1);

async function once(mode: Mode, memoryMiB: number, initramfs = env.initramfs, timeoutMs = 900_000): Promise<number | null> {
  const files: Record<string, string | { file: string }> = {
    '/pxe/installer-kernel': { file: env.kernel },
    '/pxe/installer-initramfs': { file: initramfs },
  };
  const server = await serveFiles(files);
  files['/installer/autorun'] = `#!/bin/sh\ncurl -s -o /dev/null http://10.0.2.2:${server.port}/mark/autorun-started\npoweroff\n`;
  // The built-in environment's boot entry as the product writes it (ar_source=, ar_nowait, ar_suffixes=).
  const entry = installerBootEntry({ kind: 'builtin', version: 'bench', kernel: 'installer-kernel', initrds: ['installer-initramfs'], files: [] }, { httpBase: `http://10.0.2.2:${server.port}`, keymap: null, profile: 'installer' });
  const cmdline = `console=ttyS0,115200 loglevel=4 panic=1 ${entry.append}`;
  const tftpDir = join(ws.dir, 'tftp');
  await mkdir(tftpDir, { recursive: true });
  if (mode === 'tftp') {
    await copyFile(env.kernel, join(tftpDir, 'installer-kernel'));
    await copyFile(initramfs, join(tftpDir, 'installer-initramfs'));
  }
  const base = mode === 'tftp' ? 'tftp://10.0.2.2/' : `http://10.0.2.2:${server.port}/pxe/`;
  await writeFile(join(tftpDir, 'boot.ipxe'), `#!ipxe\nkernel ${base}installer-kernel ${cmdline}\ninitrd ${base}installer-initramfs\nboot\n`);
  const qemuStarted = Date.now();
  try {
    const r = await bootQemu({
      serialLog: join(ws.dir, `${mode}-${memoryMiB}.serial`),
      memoryMiB,
      timeoutMs,
      ...(mode === 'direct' ? { kernel: env.kernel, initramfs, append: cmdline } : { tftpDir, bootfile: 'boot.ipxe' }),
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

/** Best of `runs` boots in each mode, as table rows; the best direct boot is returned too. */
async function bootRows(label: string, initramfs: string): Promise<{ rows: string[]; direct: number | null }> {
  const rows: string[] = [];
  let direct: number | null = null;
  for (const mode of modes) {
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const s = await once(mode, 1024, initramfs);
      console.error(`${label} ${mode}: ${s === null ? 'failed' : s.toFixed(1) + ' s'}`);
      if (s !== null) times.push(s);
    }
    const best = times.length ? Math.min(...times) : null;
    if (mode === 'direct') direct = best;
    rows.push(`| ${label} | ${mode} | ${best === null ? 'failed' : best.toFixed(1) + ' s'} | ${times.map((t) => t.toFixed(1)).join(', ')} |`);
  }
  return { rows, direct };
}

const head = '| initramfs | load | qemu start → autorun start (best) | runs |\n|---|---|---|---|';
const size = env.meta.initramfsBytes;
console.log(`installer environment ${env.meta.kernelVersion}: initramfs ${mib(size)} MiB, root ${mib(env.meta.rootBytes)} MiB unpacked`);

let root: string | null = null;
if (args.includes('--sizes') || packs.length) {
  root = join(ws.dir, 'root');
  await mkdir(root);
  await unpackInitramfs(env.initramfs, root);
}
if (args.includes('--sizes') && root) console.log(formatSizes(await measureRoot(root)).join('\n'));

if (packs.length && root) {
  // The built one first, as the reference the others are judged against in the same run.
  const lines = ['| packing | size | pack time (2 cores) |', '|---|---|---|', `| built (zstd -${ZSTD_LEVEL}) | ${mib(size)} MiB | ${env.meta.packSeconds?.toFixed(1) ?? '–'} s |`];
  const rows: string[] = [...(await bootRows(`built (zstd -${ZSTD_LEVEL})`, env.initramfs)).rows];
  for (const p of packs) {
    const out = join(ws.dir, `initramfs.${p}`);
    const t0 = performance.now();
    await packInitramfs(root, out, FIXED_EPOCH, compressor(p));
    const seconds = (performance.now() - t0) / 1000;
    lines.push(`| ${p} | ${mib((await stat(out)).size)} MiB | ${seconds.toFixed(1)} s |`);
    rows.push(...(await bootRows(p, out)).rows);
  }
  console.log(lines.join('\n') + '\n\n' + head + '\n' + rows.join('\n'));
} else if (modes.length) {
  const { rows, direct } = await bootRows('built', env.initramfs);
  console.log(head + '\n' + rows.join('\n'));
  if (direct !== null) {
    recordRatio({
      figure: `installer environment: qemu start → autorun (direct) vs the ${GOAL_SECONDS} s goal`,
      value: direct / GOAL_SECONDS,
      goal: { op: '<=', value: 1 },
      detail: `autorun at ${direct.toFixed(1)} s / ${GOAL_SECONDS} s (an absolute goal: TCG, one vCPU)`,
    });
  }
}
recordRatio({
  figure: `installer environment: initramfs size vs the ${GOAL_MIB} MiB goal`,
  value: size / 1048576 / GOAL_MIB,
  goal: { op: '<=', value: 1 },
  detail: `${mib(size)} MiB / ${GOAL_MIB} MiB (root ${mib(env.meta.rootBytes)} MiB unpacked)`,
});

if (args.includes('--min-ram')) {
  for (const m of [320, 384, 448, 512, 640, 768, 1024]) {
    const s = await once('direct', m, env.initramfs, 300_000);
    console.log(`direct boot at -m ${m}: ${s === null ? 'failed' : `autorun started at ${s.toFixed(1)} s`}`);
    if (s !== null) break;
  }
}
await ws.cleanup();
