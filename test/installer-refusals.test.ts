/**
 * Node-side refusals before the first write (issue 16, point 5): the installer's own main.sh, with its
 * libraries, run in bash against a real loop device standing in for the node's disk (a /dev/disk/by-id
 * link to it, the host's /sys). A write-protected disk (`blockdev --setro`) and a filesystem image larger
 * than the root partition the layout makes on that disk are both refused with a `failed` report that
 * names the disk (and both sizes), and the previous install's bytes on the disk are still there.
 * Only node0's side is a stand-in: curl is a shell function that records each report.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { loadSpec } from '../build/spec/load.ts';
import { planCluster, type Plan } from '../build/plan/plan.ts';
import { installerVars, renderAutorun, type FsImageRef, type ImageRef } from '../build/render/autorun.ts';
import { readScriptSources } from '../build/render/scripts.ts';
import { checkRootFits, rootPartitionBytes } from '../build/stages/check-root-fits.ts';
import { validateSpec } from '../build/spec/validate.ts';
import { recordCampaignRow } from './campaign-rows.ts';
import { baseSpec } from './fixtures/specs.ts';
import { workspace } from './helpers/workspace.ts';

const exec = promisify(execFile);
const REPO = join(import.meta.dirname, '..');
const IMAGE: ImageRef = { fileName: 'debian-0123456789abcdef.tar.zst', sha256: 'ab'.repeat(32), size: 209_246_836 };
const MiB = 1024 * 1024;

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function imageModePlan(): Promise<Plan> {
  const p = planCluster((await loadSpec(join(REPO, 'test/e2e/fixtures/lab.config.ts'))).spec);
  return { ...p, image: { ...p.image, installMode: 'image' } };
}

/** A loop device over a sparse file, holding an ext4 filesystem: "the previous install". */
async function loopDisk(dir: string, bytes: number): Promise<{ dev: string; name: string; fingerprint: () => Promise<string> }> {
  const file = join(dir, 'disk.img');
  await exec('truncate', ['-s', String(bytes), file]);
  await exec('mkfs.ext4', ['-q', '-F', '-L', 'previous', file]);
  const dev = (await exec('losetup', ['--find', '--show', '--', file])).stdout.trim();
  // The read-only flag belongs to the loop device and outlives the detach: cleared first, for whoever uses it next.
  cleanups.push(async () => {
    await exec('blockdev', ['--setrw', dev]).catch(() => {});
    await exec('losetup', ['--detach', dev]).catch(() => {});
  });
  // The first 4 MiB (partition tables, the superblock) and the last MiB (GPT's backup): what a write touches first.
  const fingerprint = async () => {
    const h = createHash('sha256');
    const fd = await open(dev, 'r');
    try {
      for (const at of [0, bytes - MiB]) {
        const buf = Buffer.alloc(at === 0 ? 4 * MiB : MiB);
        await fd.read(buf, 0, buf.length, at);
        h.update(buf);
      }
    } finally {
      await fd.close();
    }
    return h.digest('hex');
  };
  return { dev, name: dev.slice('/dev/'.length), fingerprint };
}

/**
 * installer/main.sh as the node runs it, up to where it fails; identify_node, fetch_run and the inventory
 * are given (they read the machine's own /proc and node0's run file), every report goes through curl.
 */
async function runInstaller(dir: string, plan: Plan, disk: string, fsImage?: FsImageRef) {
  const devfs = join(dir, 'dev');
  await mkdir(join(devfs, 'disk/by-id'), { recursive: true });
  await symlink(`/dev/${disk}`, join(devfs, 'disk/by-id/test-disk'));
  await symlink(`/dev/${disk}`, join(devfs, disk));
  const calls = join(dir, 'calls');
  const src = await readScriptSources('installer');
  const main = `
curl() {
  local a body=""
  for a in "$@"; do case "\${a}" in @*) body="\${a#@}" ;; esac; done
  printf 'CURL %s\\n' "\${*: -1}" >> ${calls}
  [ -z "\${body}" ] || { printf 'BODY-BEGIN\\n'; cat -- "\${body}"; printf 'BODY-END\\n'; } >> ${calls}
  return 0
}
identify_node() { NODE_NAME=labbios; NODE_MAC=52:54:00:00:00:01; NODE_INDEX=0; }
fetch_run() { PC_RUN_NONCE=n0nce; }
inventory_json() { echo '{}'; }
PC_DISK_TARGET_KIND=by-id; PC_DISK_TARGET_NAME=test-disk; PC_NODE_DISK_KINDS=(); PC_DISK_MIN_BYTES=$((64 * 1024 * 1024))
${(await readFile(join(REPO, 'installer/main.sh'), 'utf8')).replaceAll('/run/portacluster', join(dir, 'run'))}`;
  const script = renderAutorun({ title: 'test', specHash: plan.specHash, vars: installerVars(plan, IMAGE, fsImage), libraries: src.libraries, main: { name: 'main', text: main } });
  const env = { PATH: process.env.PATH!, PC_DEVFS: devfs, PC_SYSFS: '/sys', PC_LOG: join(dir, 'install.log'), PC_TARGET: join(dir, 'target') };
  const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
    const p = spawn('bash', ['-c', script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d));
    p.stderr.on('data', (d: Buffer) => (out += d));
    p.on('close', (code) => resolve({ code, out }));
  });
  const text = await readFile(calls, 'utf8').catch(() => '');
  const failed = /CURL \S+\/failed\?[^\n]*phase=(\w+)\nBODY-BEGIN\n([\s\S]*?)BODY-END/.exec(text);
  return { ...r, calls: text, failedPhase: failed?.[1], failedBody: failed?.[2] ?? '' };
}

const fsImageOf = (imageBytes: number): FsImageRef => ({ fileName: 'debian-fedcba9876543210.ext4.zst', sha256: 'cd'.repeat(32), size: 1000, imageBytes });

describe('node-side refusals before the first write', () => {
  it('a write-protected disk: a failed report naming the disk, in phase disk, and the disk unchanged', async () => {
    const ws = await workspace('pc-refuse-');
    cleanups.push(ws.cleanup);
    const disk = await loopDisk(ws.dir, 256 * MiB);
    await exec('blockdev', ['--setro', disk.dev]);
    const before = await disk.fingerprint();
    const t0 = Date.now();
    const r = await runInstaller(ws.dir, await imageModePlan(), disk.name, fsImageOf(64 * MiB));
    expect(r.code, r.out).toBe(1);
    expect(r.failedPhase, r.calls).toBe('disk');
    expect(r.failedBody).toContain(`the target disk ${join(ws.dir, 'dev', disk.name)} is read-only (write-protected`);
    expect(r.calls).not.toMatch(/\/partition\?/);
    expect(await disk.fingerprint()).toBe(before);
    await recordCampaignRow({ fault: 'read-only (write-protected) target disk', tier: 'fast', injected: 1, survived: r.failedPhase === 'disk' ? 1 : 0, dataLost: (await disk.fingerprint()) === before ? 0 : 1, convergeMs: Date.now() - t0, note: 'failed report in phase disk naming the disk; nothing written' });
  });

  it('an image larger than the root partition the layout makes on this disk: refused with both sizes, the previous install intact', async () => {
    const ws = await workspace('pc-refuse-');
    cleanups.push(ws.cleanup);
    const plan = await imageModePlan();
    const disk = await loopDisk(ws.dir, 256 * MiB);
    const before = await disk.fingerprint();
    // The lab layout: a 64 MiB ESP, the root the rest; on this disk the root gets 256 − 1 − 64 − 1 MiB.
    const root = (256 - 66) * MiB;
    const t0 = Date.now();
    const r = await runInstaller(ws.dir, plan, disk.name, fsImageOf(root + 4096));
    expect(r.code, r.out).toBe(1);
    expect(r.failedPhase, r.calls).toBe('disk');
    expect(r.failedBody).toContain(`the filesystem image needs ${root + 4096} bytes, but the root partition the layout makes on ${join(ws.dir, 'dev', disk.name)} (${256 * MiB} bytes) has ${root} bytes: refused, nothing was written`);
    expect(await disk.fingerprint()).toBe(before);
    expect((await exec('blkid', ['-c', '/dev/null', '-s', 'LABEL', '-o', 'value', disk.dev])).stdout.trim()).toBe('previous');
    await recordCampaignRow({ fault: 'image larger than the root partition (image mode)', tier: 'fast', injected: 1, survived: r.failedPhase === 'disk' ? 1 : 0, dataLost: (await disk.fingerprint()) === before ? 0 : 1, convergeMs: Date.now() - t0, note: 'refused in phase disk with both sizes; the previous install untouched' });
  });

  it('an image that fits exactly passes both checks', async () => {
    const ws = await workspace('pc-refuse-');
    cleanups.push(ws.cleanup);
    const disk = await loopDisk(ws.dir, 256 * MiB);
    const plan = await imageModePlan();
    const src = await readScriptSources('installer');
    const script = renderAutorun({ title: 't', specHash: plan.specHash, vars: installerVars(plan, IMAGE, fsImageOf((256 - 66) * MiB)), libraries: src.libraries, main: { name: 'm', text: `fail_install() { echo "FAIL $2"; exit 1; }\ncheck_disk_writable ${disk.name}; check_image_fits ${disk.name}; echo fits` } });
    const r = await exec('bash', ['-c', script], { env: { PATH: process.env.PATH!, PC_SYSFS: '/sys', PC_DEVFS: '/dev' } });
    expect(r.stdout).toBe('fits\n');
  });

  // The estimate must be what sfdisk really makes, or a refusal would be wrong one way or the other.
  it.each([
    ['gpt', 3 * 1024 * MiB],
    ['gpt', 126_419_751_936],
    ['gpt', 2049 * MiB + 7 * 512],
    ['msdos', 3 * 1024 * MiB],
    ['msdos', 126_419_751_936],
  ] as const)('root_part_bytes on a %s disk of %d bytes is the size sfdisk gives the root partition', async (table, bytes) => {
    const ws = await workspace('pc-refuse-');
    cleanups.push(ws.cleanup);
    const s = baseSpec();
    s.disk.table = table;
    s.disk.minSize = '2G';
    s.disk.partitions = [{ size: '64M', type: 'esp', mountpoint: '/boot/efi' }, ...(table === 'gpt' ? [{ size: '1M', type: 'bios_grub' }] : []), { size: '1000K', type: 'swap' }, { size: 'rest', type: 'linux', mountpoint: '/' }];
    const plan = planCluster(validateSpec(s, 't'));
    const sys = join(ws.dir, 'sys/block/vdz');
    await mkdir(sys, { recursive: true });
    await writeFile(join(sys, 'size'), `${bytes / 512}\n`);
    const src = await readScriptSources('installer');
    const script = renderAutorun({ title: 't', specHash: plan.specHash, vars: installerVars(plan, IMAGE), libraries: src.libraries, main: { name: 'm', text: 'sfdisk_script > "${OUT}.sfdisk"; root_part_bytes vdz' } });
    const out = join(ws.dir, 'layout');
    const r = await exec('bash', ['-c', script], { env: { PATH: process.env.PATH!, PC_SYSFS: join(ws.dir, 'sys'), OUT: out } });
    const img = join(ws.dir, 'disk.img');
    await exec('truncate', ['-s', String(bytes), img]);
    await exec('sh', ['-c', 'sfdisk --quiet "$1" < "$2"', 'sh', img, `${out}.sfdisk`]);
    const parts = JSON.parse((await exec('sfdisk', ['--json', img])).stdout).partitiontable.partitions as { size: number }[];
    expect(Number(r.stdout.trim())).toBe(parts.at(-1)!.size * 512);
    // The build's arithmetic (stages/check-root-fits.ts) is the same.
    expect(rootPartitionBytes(plan.disk, bytes)).toBe(parts.at(-1)!.size * 512);
  });
});

describe('the build refuses an image no node could install (image mode)', () => {
  const planWith = (partitions: Record<string, unknown>[], minSize = '2G') => {
    const s = baseSpec();
    s.disk.minSize = minSize;
    s.disk.partitions = partitions;
    return planCluster(validateSpec(s, 't'));
  };
  const ESP = { size: '64M', type: 'esp', mountpoint: '/boot/efi' };

  it('a fixed root partition smaller than the image: refused with both sizes and the partition named', async () => {
    const plan = planWith([ESP, { size: '1G', type: 'linux', mountpoint: '/' }, { size: 'rest', type: 'linux', mountpoint: '/srv' }], '4G');
    await expect(checkRootFits(plan, 1024 ** 3 + 1)).rejects.toThrow(/^check-root-fits: the filesystem image needs 1073741825 bytes \(1G\), but the root partition \(disk.partitions\[1\]\) has 1073741824 bytes \(1G\) on a disk of disk.minSize 4G: no node could install it\n  hint: make the root partition larger/);
    await expect(checkRootFits(plan, 1024 ** 3)).resolves.toEqual({ rootBytes: 1024 ** 3 });
  });

  it('a "rest" root on the smallest allowed disk: refused above what that disk leaves, accepted at it', async () => {
    const plan = planWith([ESP, { size: 'rest', type: 'linux', mountpoint: '/' }]);
    const left = 2 * 1024 ** 3 - 66 * MiB;
    await expect(checkRootFits(plan, left + 1)).rejects.toThrow(/has 2078277632 bytes \(1\.94G\) on a disk of disk.minSize 2G: no node could install it\n  hint: raise disk.minSize/);
    await expect(checkRootFits(plan, left)).resolves.toEqual({ rootBytes: left });
  });
});
