/**
 * The generated installer and rescue scripts: shellcheck on every one of them, the data prologue read
 * back by bash with hostile values, and the hand-written library functions run for real in bash against
 * fake /proc/cmdline, /sys and /dev trees, a sparse disk image (sfdisk) and a local HTTP server.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { installerVars, renderAutorun, rescueVars, type FsImageRef, type ImageRef } from '../build/render/autorun.ts';
import { readScriptSources, renderDisklessScript, renderInstallerScript, renderRescueScript } from '../build/render/scripts.ts';
import { dataPrologue } from '../build/render/shell.ts';
import { loadSpec } from '../build/spec/load.ts';
import { validateSpec } from '../build/spec/validate.ts';
import { planCluster, type Plan } from '../build/plan/plan.ts';
import { baseSpec, KEY } from './fixtures/specs.ts';
import { flakyServer } from './e2e/harness/flaky-server.ts';
import { FIXED_EPOCH, workspace } from './helpers/workspace.ts';
import { memoryLogger } from '../build/lib/log.ts';
import { derivedUuid, packFsImage } from '../build/stages/pack-fsimage.ts';
import { expectGolden } from './helpers/golden.ts';

const exec = promisify(execFile);
const IMAGE: ImageRef = { fileName: 'debian-0123456789abcdef.tar.zst', sha256: 'ab'.repeat(32), size: 209_246_836 };
const FSIMAGE: FsImageRef = { fileName: 'debian-fedcba9876543210.ext4.zst', sha256: 'cd'.repeat(32), size: 209_441_417, imageBytes: 880_803_840 };

const HOSTILE_KEYS = [
  `${KEY.split(' ').slice(0, 2).join(' ')} it's $(touch /tmp/pwned) \`id\`; rm -rf / "quoted" \\ back`,
  `${KEY.split(' ').slice(0, 2).join(' ')} second;key with   spaces & | > <`,
];

function hostilePlan(): Plan {
  const s = baseSpec();
  s.domain = 'pc.example.test';
  s.users = [
    { name: 'o_brien', sudo: true, sshKeys: HOSTILE_KEYS },
    { name: 'nokey', sudo: false, sshKeys: [], shell: '/usr/bin/zsh' },
  ];
  s.rescue = { user: 'rescuer', sshKeys: HOSTILE_KEYS };
  s.disk.target = { byId: 'nvme-Samsung_SSD_970_EVO_1TB_S467NX0M123456:1' };
  s.boot.os.kernelArgs = ['quiet', 'panic=30'];
  return planCluster(validateSpec(s, 'hostile'));
}

async function examplePlan(file: string): Promise<Plan> {
  return planCluster((await loadSpec(file)).spec);
}

async function imageModePlan(): Promise<Plan> {
  const p = await examplePlan('test/e2e/fixtures/lab.config.ts');
  return { ...p, image: { ...p.image, installMode: 'image' } };
}

async function shellcheck(text: string, exclude: string[] = []): Promise<string> {
  return new Promise((resolve) => {
    const p = spawn('shellcheck', ['-s', 'bash', ...exclude.map((e) => `--exclude=${e}`), '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('close', (code) => resolve(code === 0 ? '' : out || `shellcheck exited ${code}`));
    p.stdin.end(text);
  });
}

/** Runs bash with the prologue + libraries of the installer (or rescue) and `main` as the main. */
async function runLibs(plan: Plan, main: string, env: Record<string, string> = {}, kind: 'installer' | 'rescue' = 'installer') {
  const src = await readScriptSources(kind);
  const vars = kind === 'installer' ? installerVars(plan, IMAGE, FSIMAGE) : rescueVars(plan);
  const script = renderAutorun({ title: 'test', specHash: plan.specHash, vars, libraries: src.libraries, main: { name: 'test', text: main } });
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const p = spawn('bash', ['-c', script], { env: { PATH: process.env.PATH!, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A curl stand-in for report tests: records each call's arguments and any posted file. */
const FAKE_CURL = `
curl() {
  local a body=""
  for a in "$@"; do case "\${a}" in @*) body="\${a#@}" ;; esac; done
  printf 'CURL %s\\n' "\${*: -1}" >> "\${CALLS}"
  [ -n "\${body}" ] && { printf 'BODY-BEGIN\\n'; cat -- "\${body}"; printf 'BODY-END\\n'; } >> "\${CALLS}"
  return 0
}
`;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});
async function tmp(): Promise<string> {
  const ws = await workspace('pc-installer-');
  cleanups.push(ws.cleanup);
  return ws.dir;
}

describe('generated scripts (golden)', () => {
  it('installer/autorun and rescue/autorun of the example match their golden files', async () => {
    const p = await examplePlan('examples/portacluster.config.ts');
    await expectGolden('example/installer/autorun', await renderInstallerScript(p, IMAGE, FSIMAGE));
    await expectGolden('example/rescue/autorun', await renderRescueScript(p));
  });
});

describe('generated scripts pass shellcheck', () => {
  for (const [name, plan] of [
    ['example', () => examplePlan('examples/portacluster.config.ts')],
    ['lab', () => examplePlan('test/e2e/fixtures/lab.config.ts')],
    ['hostile', async () => hostilePlan()],
    ['image mode', imageModePlan],
  ] as const) {
    it(`${name}: installer, rescue and diskless`, async () => {
      const p = await plan();
      const installer = await renderInstallerScript(p, IMAGE, FSIMAGE);
      expect(installer).toContain(`  PC_INSTALL_MODE='${p.image.installMode}'\n`);
      const rescue = await renderRescueScript(p);
      expect(installer.startsWith('#!/bin/bash\n')).toBe(true);
      expect(await shellcheck(installer)).toBe('');
      expect(await shellcheck(rescue)).toBe('');
      const diskless = await renderDisklessScript(p, { fileName: 'debian-0123456789abcdef.sfs', sha256: 'cd'.repeat(32), size: 180_000_000 });
      expect(await shellcheck(diskless)).toBe('');
      // Syntax as bash itself parses it.
      await exec('bash', ['-n', '-c', installer]);
    });
  }
});

describe('the data prologue reads back exactly in bash', () => {
  it('keeps hostile values inert and exact', async () => {
    const plan = hostilePlan();
    const prologue = dataPrologue('t', installerVars(plan, IMAGE));
    const dir = await tmp();
    const script = `${prologue}\nprintf '%s\\0' "\${PC_USER_KEYS[@]}" "\${PC_USER_NAMES[@]}" "\${PC_USER_SHELLS[@]}" "\${PC_DISK_TARGET_KIND}" "\${PC_DISK_TARGET_NAME}" "\${PC_KERNEL_ARGS}" "\${PC_PART_SIZES[@]}" "\${PC_NODE_MACS[@]}" "\${PC_IMAGE_URL}"`;
    const { stdout } = await exec('bash', ['-c', script], { cwd: dir, encoding: 'buffer' } as never);
    const values = (stdout as unknown as Buffer).toString().split('\0').slice(0, -1);
    expect(values).toEqual([
      HOSTILE_KEYS.join('\n'),
      '',
      'o_brien',
      'nokey',
      '/bin/bash',
      '/usr/bin/zsh',
      'by-id',
      'nvme-Samsung_SSD_970_EVO_1TB_S467NX0M123456:1',
      'quiet panic=30',
      String(512 * 1024 * 1024),
      'rest',
      'c0:3f:d5:60:e5:a1',
      'c0:3f:d5:60:cd:8b',
      `http://192.168.10.10/images/${IMAGE.fileName}`,
    ]);
    // Nothing in a value was executed.
    await expect(readFile('/tmp/pwned')).rejects.toThrow();
  });

  it('rescue keys come back line by line', async () => {
    const prologue = dataPrologue('t', rescueVars(hostilePlan()));
    const { stdout } = await exec('bash', ['-c', `${prologue}\nwhile IFS= read -r k; do printf '[%s]\\n' "$k"; done <<< "$PC_RESCUE_KEYS"; echo "$PC_RESCUE_USER"`]);
    expect(stdout).toBe(`[${HOSTILE_KEYS[0]}]\n[${HOSTILE_KEYS[1]}]\nrescuer\n`);
  });
});

/** This machine's boot id as the installer sends it (seq=BOOT.N): 32 hex digits. */
const bootId = async () => (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).replace(/[^0-9a-f]/g, '');

describe('node identification', () => {
  it('finds the node by BOOTIF and reports with its name', async () => {
    const dir = await tmp();
    await writeFile(join(dir, 'cmdline'), 'ar_source=http://192.168.10.10/installer/ BOOTIF=01-C0-3F-D5-60-CD-8B quiet\n');
    const env = { PC_CMDLINE_FILE: join(dir, 'cmdline'), PC_SYSFS: join(dir, 'sys'), CALLS: join(dir, 'calls'), PC_LOG: join(dir, 'log') };
    const r = await runLibs(hostilePlan(), `${FAKE_CURL}identify_node; echo "$NODE_INDEX $NODE_NAME $NODE_MAC $NODE_FIRMWARE"; report start`, env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('1 node2 c0:3f:d5:60:cd:8b uefi\n');
    expect(await readFile(join(dir, 'calls'), 'utf8')).toBe(`CURL http://192.168.10.10/portacluster/report/start?host=node2&mac=c0:3f:d5:60:cd:8b&nonce=&seq=${await bootId()}.1\n`);
  });

  it('falls back to the NICs without BOOTIF, and refuses an unknown machine with a failed report', async () => {
    const dir = await tmp();
    await writeFile(join(dir, 'cmdline'), 'quiet\n');
    for (const [nic, mac, real] of [['eth0', 'de:ad:be:ef:00:01', true], ['eth1', 'c0:3f:d5:60:e5:a1', true], ['veth9', 'c0:3f:d5:60:cd:8b', false]] as const) {
      await mkdir(join(dir, 'sys/class/net', nic), { recursive: true });
      await writeFile(join(dir, 'sys/class/net', nic, 'address'), `${mac}\n`);
      if (real) await mkdir(join(dir, 'sys/class/net', nic, 'device'));
    }
    const env = { PC_CMDLINE_FILE: join(dir, 'cmdline'), PC_SYSFS: join(dir, 'sys'), CALLS: join(dir, 'calls'), PC_LOG: join(dir, 'log') };
    const ok = await runLibs(hostilePlan(), `${FAKE_CURL}identify_node; echo "=$NODE_NAME $NODE_MAC $NODE_NIC"`, env);
    expect(ok.stdout).toContain('=node1 c0:3f:d5:60:e5:a1 eth1\n');

    await writeFile(join(dir, 'cmdline'), 'BOOTIF=01-de-ad-be-ef-00-01\n');
    const bad = await runLibs(hostilePlan(), `${FAKE_CURL}log_open; trap_errors; identify_node; echo SHOULD-NOT-RUN`, env);
    expect(bad.code).toBe(1);
    expect(bad.stdout).not.toContain('SHOULD-NOT-RUN');
    const calls = await readFile(join(dir, 'calls'), 'utf8');
    expect(calls).toContain('CURL http://192.168.10.10/portacluster/report/failed?host=&mac=de:ad:be:ef:00:01&nonce=&phase=start\n');
    expect(calls).toMatch(/BODY-BEGIN\n[^]*unknown node: no MAC of this machine \(de:ad:be:ef:00:01\) is in the plan[^]*BODY-END/);
    expect(calls).toContain('CURL http://192.168.10.10/portacluster/report/log?host=&mac=de:ad:be:ef:00:01&nonce=\n');
    expect(await readFile(join(dir, 'log'), 'utf8')).toContain('FAILED in phase start');
  });
});

describe('runs and nonces, node side', () => {
  /** A curl stand-in for node0: serves the run file by MAC, answers reports with $ANSWER (an HTTP code). */
  const NODE0_CURL = `
curl() {
  local a out="" url="\${*: -1}" w=""
  while [ "$#" -gt 0 ]; do case "$1" in -o) out="$2"; shift ;; -w) w="$2"; shift ;; esac; shift; done
  printf 'CURL %s\\n' "\${url}" >> "\${CALLS}"
  case "\${url}" in
    */runs/c0-3f-d5-60-cd-8b) printf 'run=20261126-101010-abcd\\nnonce=%s\\n' 0123456789abcdef0123456789abcdef > "\${out}" ;;
    */runs/*) return 22 ;;
    *) [ -z "\${out}" ] || printf 'no install was requested\\n' > "\${out}"; [ -z "\${w}" ] || printf '%s' "\${ANSWER}" ;;
  esac
}
`;
  const env = async (answer: string) => {
    const dir = await tmp();
    await writeFile(join(dir, 'cmdline'), 'BOOTIF=01-C0-3F-D5-60-CD-8B\n');
    return { dir, env: { PC_CMDLINE_FILE: join(dir, 'cmdline'), PC_SYSFS: join(dir, 'sys'), CALLS: join(dir, 'calls'), PC_LOG: join(dir, 'log'), ANSWER: answer } };
  };

  it('fetches the run file by MAC and sends the nonce with every report, never into the log', async () => {
    const { dir, env: e } = await env('200');
    const r = await runLibs(hostilePlan(), `${NODE0_CURL}log_open; trap_errors; identify_node; fetch_run; phase start; phase disk; log_close; echo "RUN=$PC_RUN"`, e);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('RUN=20261126-101010-abcd\n');
    expect((await readFile(join(dir, 'calls'), 'utf8')).split('\n').filter(Boolean)).toEqual([
      'CURL http://192.168.10.10/runs/c0-3f-d5-60-cd-8b',
      // Numbered within the boot (the kernel's boot id): node0 answers a retry of a counted report without counting it again.
      `CURL http://192.168.10.10/portacluster/report/start?host=node2&mac=c0:3f:d5:60:cd:8b&nonce=0123456789abcdef0123456789abcdef&seq=${await bootId()}.1`,
      `CURL http://192.168.10.10/portacluster/report/disk?host=node2&mac=c0:3f:d5:60:cd:8b&nonce=0123456789abcdef0123456789abcdef&seq=${await bootId()}.2`,
    ]);
    const log = await readFile(join(dir, 'log'), 'utf8');
    expect(log).toContain('run 20261126-101010-abcd');
    expect(log).not.toContain('0123456789abcdef');
  });

  it('a start node0 refuses (409) stops the script before the next step, with no failed report', async () => {
    const { dir, env: e } = await env('409');
    const r = await runLibs(hostilePlan(), `${NODE0_CURL}log_open; trap_errors; identify_node; fetch_run; phase start; echo SHOULD-NOT-RUN`, e);
    expect(r.code).toBe(3);
    expect(r.stdout).not.toContain('SHOULD-NOT-RUN');
    expect(r.stdout + r.stderr).toContain('node0 refused start: no install was requested');
    expect(await readFile(join(dir, 'calls'), 'utf8')).not.toContain('/failed?');
  });

  it('a watcher that cannot be reached (or says 500) never stops an install', async () => {
    const { env: e } = await env('500');
    const r = await runLibs(hostilePlan(), `${NODE0_CURL}identify_node; fetch_run; phase start; echo GO-ON`, e);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('GO-ON');
  });
});

describe('disk selection (fake /sys and /dev)', () => {
  async function fakeDisks(dir: string, disks: Record<string, { gib: number; removable?: boolean; device?: boolean; parts?: number }>) {
    for (const [name, d] of Object.entries(disks)) {
      const sys = join(dir, 'sys/block', name);
      await mkdir(sys, { recursive: true });
      await writeFile(join(sys, 'size'), `${d.gib * 2 * 1024 * 1024}\n`);
      await writeFile(join(sys, 'removable'), d.removable ? '1\n' : '0\n');
      if (d.device !== false) await mkdir(join(sys, 'device'));
      for (let i = 1; i <= (d.parts ?? 0); i++) {
        await mkdir(join(sys, `${name}${i}`), { recursive: true });
        await writeFile(join(sys, `${name}${i}`, 'partition'), `${i}\n`);
      }
    }
    await mkdir(join(dir, 'dev/disk/by-id'), { recursive: true });
  }
  const select = async (plan: Plan, dir: string, kind: string, name: string) =>
    runLibs(plan, `PC_DISK_TARGET_KIND=${kind}; PC_DISK_TARGET_NAME=${name}; PC_DISK_MIN_BYTES=$((8 * 1024 * 1024 * 1024)); select_disk`, {
      PC_SYSFS: join(dir, 'sys'),
      PC_DEVFS: join(dir, 'dev'),
    });

  it('only-non-removable: one real disk among loop, CD, USB and empty card reader', async () => {
    const dir = await tmp();
    await fakeDisks(dir, { vda: { gib: 16, parts: 2 }, loop0: { gib: 1, device: false }, sr0: { gib: 1, removable: true }, sdb: { gib: 32, removable: true }, sdc: { gib: 0 } });
    const r = await select(hostilePlan(), dir, 'only-non-removable', "''");
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('vda\n');
  });

  it('refuses several disks, none, and a disk smaller than the layout', async () => {
    const dir = await tmp();
    await fakeDisks(dir, { vda: { gib: 16 }, nvme0n1: { gib: 64 } });
    const several = await select(hostilePlan(), dir, 'only-non-removable', "''");
    expect(several.code).toBe(1);
    expect(several.stderr).toContain('several non-removable disks (nvme0n1 vda)');
    const dir2 = await tmp();
    await fakeDisks(dir2, { sr0: { gib: 1, removable: true } });
    expect((await select(hostilePlan(), dir2, 'only-non-removable', "''")).stderr).toContain('no non-removable disk found');
    const dir3 = await tmp();
    await fakeDisks(dir3, { vda: { gib: 4 } });
    const small = await select(hostilePlan(), dir3, 'only-non-removable', "''");
    expect(small.code).toBe(1);
    expect(small.stderr).toContain(`disk vda has ${4 * 1024 ** 3} bytes, the layout needs at least ${8 * 1024 ** 3}`);
  });

  it('by-id: follows the link to the whole disk; refuses a partition link, a missing name and a path', async () => {
    const dir = await tmp();
    await fakeDisks(dir, { nvme0n1: { gib: 64, parts: 1 }, vda: { gib: 16 } });
    await symlink('../../nvme0n1', join(dir, 'dev/disk/by-id/nvme-Samsung_SSD_970_EVO_1TB_S467NX0M123456:1'));
    await symlink('../../nvme0n1p1', join(dir, 'dev/disk/by-id/nvme-Samsung_SSD_970_EVO_1TB_S467NX0M123456:1-part1'));
    const ok = await select(hostilePlan(), dir, 'by-id', 'nvme-Samsung_SSD_970_EVO_1TB_S467NX0M123456:1');
    expect(ok.stdout).toBe('nvme0n1\n');
    const part = await select(hostilePlan(), dir, 'by-id', 'nvme-Samsung_SSD_970_EVO_1TB_S467NX0M123456:1-part1');
    expect(part.code).toBe(1);
    const missing = await select(hostilePlan(), dir, 'by-id', 'ata-nothing');
    expect(missing.stderr).toContain('no disk at /dev/disk/by-id/ata-nothing (present: nvme-Samsung');
    expect((await select(hostilePlan(), dir, 'by-id', '../../vda')).code).toBe(1);
  });

  it('names partitions like the kernel does', async () => {
    const r = await runLibs(hostilePlan(), 'part_dev /dev/sda 1; part_dev /dev/nvme0n1 2; part_dev /dev/mmcblk0 3; part_dev /dev/vda 2');
    expect(r.stdout).toBe('/dev/sda1\n/dev/nvme0n1p2\n/dev/mmcblk0p3\n/dev/vda2\n');
  });
});

describe('partitioning and configuration output', () => {
  it('sfdisk lays out the GPT table the plan asks for on a real (sparse) image', async () => {
    const dir = await tmp();
    const plan = await examplePlan('test/e2e/fixtures/lab.config.ts');
    const r = await runLibs(plan, 'sfdisk_script');
    expect(r.stdout).toBe(
      'label: gpt\nsize=65536KiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI"\ntype=0FC63DAF-8483-4772-8E47-3D69C8CDE47A, name="root"\n',
    );
    const img = join(dir, 'disk.img');
    await exec('truncate', ['-s', '3G', img]);
    await new Promise<void>((resolve, reject) => {
      const p = spawn('sfdisk', ['--quiet', img], { stdio: ['pipe', 'ignore', 'pipe'] });
      p.on('close', (c) => (c === 0 ? resolve() : reject(new Error(`sfdisk ${c}`))));
      p.stdin.end(r.stdout);
    });
    const table = JSON.parse((await exec('sfdisk', ['--json', img])).stdout).partitiontable;
    expect(table.label).toBe('gpt');
    expect(table.partitions.map((p: { name: string; type: string; size: number }) => [p.name, p.type, p.size])).toEqual([
      ['EFI', 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B', 131072],
      ['root', '0FC63DAF-8483-4772-8E47-3D69C8CDE47A', table.partitions[1].size],
    ]);
    expect(table.partitions[1].size * 512).toBeGreaterThan(2.9 * 1024 ** 3);
  });

  it('msdos tables use type ids and no names', async () => {
    const s = baseSpec();
    s.disk.table = 'msdos';
    const r = await runLibs(planCluster(validateSpec(s, 't')), 'sfdisk_script');
    expect(r.stdout).toBe('label: dos\nsize=524288KiB, type=ef\ntype=83\n');
  });

  it('fstab by UUID, hosts with every node, networkd by MAC', async () => {
    const plan = await examplePlan('test/e2e/fixtures/lab.config.ts');
    const r = await runLibs(plan, 'NODE_NAME=labbios; NODE_IP=192.168.10.21; NODE_MAC=52:54:00:a5:00:01; PART_UUIDS=(ABCD-1234 0f0e-uuid); fstab_lines; hosts_lines; networkd_unit');
    expect(r.stdout).toContain('UUID=ABCD-1234 /boot/efi vfat umask=0077 0 0\nUUID=0f0e-uuid / ext4 defaults 0 1\n');
    expect(r.stdout).toContain('127.0.0.1\tlocalhost\n192.168.10.21\tlabbios.lab.test labbios\n192.168.10.22\tlabuefi.lab.test labuefi\n');
    expect(r.stdout).not.toContain('127.0.1.1');
    expect(r.stdout).toContain('[Match]\nMACAddress=52:54:00:a5:00:01\n\n[Network]\nDHCP=ipv4\n');
  });

  it('configures identity, network and serial console in an image tree', async () => {
    const dir = await tmp();
    const t = join(dir, 'target');
    for (const d of ['etc', 'var/lib/dbus', 'usr/lib/systemd/system', 'usr/lib/systemd']) await mkdir(join(t, d), { recursive: true });
    await writeFile(join(t, 'usr/lib/systemd/systemd-networkd'), '');
    for (const u of ['systemd-networkd.service', 'systemd-networkd.socket', 'serial-getty@.service', 'ssh.service']) await writeFile(join(t, 'usr/lib/systemd/system', u), '');
    await writeFile(join(t, 'etc/machine-id'), 'deadbeef\n');
    const plan = await examplePlan('test/e2e/fixtures/lab.config.ts');
    const r = await runLibs(plan, 'NODE_NAME=labuefi; NODE_IP=192.168.10.22; NODE_MAC=52:54:00:a5:00:02; configure_identity; configure_network; configure_ssh; configure_serial_console', { PC_TARGET: t });
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(join(t, 'etc/hostname'), 'utf8')).toBe('labuefi\n');
    expect(await readFile(join(t, 'etc/machine-id'), 'utf8')).toBe('');
    const { stdout } = await exec('bash', ['-c', `cd ${t} && find etc var -type l -printf '%p -> %l\\n' | sort`]);
    expect(stdout).toBe(
      [
        'etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service -> /usr/lib/systemd/system/serial-getty@.service',
        'etc/systemd/system/multi-user.target.wants/portacluster-ssh-keygen.service -> /etc/systemd/system/portacluster-ssh-keygen.service',
        'etc/systemd/system/multi-user.target.wants/ssh.service -> /usr/lib/systemd/system/ssh.service',
        'etc/systemd/system/multi-user.target.wants/systemd-networkd.service -> /usr/lib/systemd/system/systemd-networkd.service',
        'etc/systemd/system/sockets.target.wants/systemd-networkd.socket -> /usr/lib/systemd/system/systemd-networkd.socket',
        'var/lib/dbus/machine-id -> /etc/machine-id',
        '',
      ].join('\n'),
    );
    expect(await readFile(join(t, 'etc/systemd/network/20-portacluster-boot.network'), 'utf8')).toContain('MACAddress=52:54:00:a5:00:02');
  });
});

describe('image download: verify while streaming, retry with resume', () => {
  async function tarball(dir: string) {
    const src = join(dir, 'src');
    await mkdir(join(src, 'etc'), { recursive: true });
    await writeFile(join(src, 'etc/os-release'), 'ID=golden\n');
    // Incompressible bulk so the drop happens mid-stream.
    await writeFile(join(src, 'bulk'), Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => createHash('md5').update(String(i)).digest()[0]!)));
    await mkdir(join(dir, 'srv'));
    await exec('bash', ['-c', `tar -C ${src} -c . | zstd -q -c > ${dir}/srv/img.tar.zst`]);
    const bytes = await readFile(join(dir, 'srv/img.tar.zst'));
    return { sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
  }
  async function serve(root: string, drops: number) {
    const events: { range: string | null; dropped: boolean }[] = [];
    const server = flakyServer({ root, drops, dropAt: 0.4, onEvent: (e) => events.push(e) });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => server.close(() => r())));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/img.tar.zst`, events };
  }
  const stubs = (dir: string) => `${FAKE_CURL.replace(/curl\(\)/, 'fakecurl()')}
report() { echo "REPORT $1" >> ${dir}/calls; }
report_progress() { echo "PROGRESS $*" >> ${dir}/calls; }
refresh_filesystems() { echo REFRESH >> ${dir}/calls; rm -rf -- "\${PC_TARGET:?}"/*; }
wipe_filesystems() { echo WIPE >> ${dir}/calls; }
fail_install() { echo "FAIL $2" >> ${dir}/calls; exit 1; }
`;

  // openssl where the node has it (the built-in environment does), coreutils' sha256sum where not.
  it.each(['openssl', 'sha256sum'])('extracts and verifies in one pass (hasher: %s)', async (tool) => {
    const dir = await tmp();
    const img = await tarball(dir);
    const { url, events } = await serve(join(dir, 'srv'), 0);
    await mkdir(join(dir, 't'));
    const r = await runLibs(await examplePlan('test/e2e/fixtures/lab.config.ts'), `${stubs(dir)}PC_IMAGE_URL=${url}; PC_IMAGE_SHA256=${img.sha256}; PC_IMAGE_SIZE=${img.size}; trap_errors; install_image; echo "OK \${PC_SHA256[0]}"`, {
      PC_TARGET: join(dir, 't'),
      PC_DOWNLOAD_DIR: join(dir, 'dl'),
      PC_SHA256_TOOL: tool,
    });
    expect(r.stdout, r.stderr).toContain(`OK ${tool}\n`);
    expect(await readFile(join(dir, 't/etc/os-release'), 'utf8')).toBe('ID=golden\n');
    expect(events).toHaveLength(1);
  });

  it('a wrong digest wipes what was extracted and fails; a dropped stream is retried with resume', async () => {
    const dir = await tmp();
    const img = await tarball(dir);
    const bad = await serve(join(dir, 'srv'), 0);
    await mkdir(join(dir, 't'));
    const env = { PC_TARGET: join(dir, 't'), PC_DOWNLOAD_DIR: join(dir, 'dl') };
    const plan = await examplePlan('test/e2e/fixtures/lab.config.ts');
    const r = await runLibs(plan, `${stubs(dir)}PC_IMAGE_URL=${bad.url}; PC_IMAGE_SHA256=${'0'.repeat(64)}; PC_IMAGE_SIZE=${img.size}; trap_errors; install_image; echo OK`, env);
    expect(r.code).toBe(1);
    expect(await readFile(join(dir, 'calls'), 'utf8')).toMatch(/WIPE\nFAIL the golden image does not match its sha256/);

    const dir2 = await tmp();
    const img2 = await tarball(dir2);
    const flaky = await serve(join(dir2, 'srv'), 2);
    await mkdir(join(dir2, 't'));
    const ok = await runLibs(plan, `${stubs(dir2)}PC_IMAGE_URL=${flaky.url}; PC_IMAGE_SHA256=${img2.sha256}; PC_IMAGE_SIZE=${img2.size}; trap_errors; install_image; echo OK`, {
      PC_TARGET: join(dir2, 't'),
      PC_DOWNLOAD_DIR: join(dir2, 'dl'),
    });
    expect(ok.stdout, ok.stderr).toContain('OK\n');
    expect(await readFile(join(dir2, 't/etc/os-release'), 'utf8')).toBe('ID=golden\n');
    // Stream broken, full retry broken, then resumed from where it stopped.
    expect(flaky.events.map((e) => [e.range !== null, e.dropped])).toEqual([
      [false, true],
      [false, true],
      [true, false],
    ]);
    const calls = await readFile(join(dir2, 'calls'), 'utf8');
    expect(calls).toContain('REFRESH');
    // After the break, download and unpacking are reported as phases of their own, each ending full.
    expect(calls.split('\n').filter((l) => l.startsWith('REPORT'))).toEqual(['REPORT download', 'REPORT extract', 'REPORT download', 'REPORT extract']);
    expect(calls.split('\n').filter((l) => l.startsWith('PROGRESS')).slice(-2)).toEqual([`PROGRESS ${img2.size} ${img2.size}`, `PROGRESS ${img2.size} ${img2.size}`].map((l, i) => expect.stringMatching(new RegExp(`^${l} \\d+$`)) as unknown as string));
  });
});

describe('download progress: reported while the image streams, and what it costs', () => {
  it('reports bytes, total and rate every PC_PROGRESS_SECONDS, ends at the image size; the install with reports takes about as long as without', async () => {
    const dir = await tmp();
    // Incompressible, so the stream (curl → sha256sum + zstd → tar) is the work, as on a node.
    await mkdir(join(dir, 'src'));
    await writeFile(join(dir, 'src/bulk'), randomBytes(96 << 20));
    await mkdir(join(dir, 'srv'));
    await exec('bash', ['-c', `tar -C ${dir}/src -c . | zstd -q -1 -c > ${dir}/srv/img.tar.zst`]);
    const bytes = await readFile(join(dir, 'srv/img.tar.zst'));
    const img = { sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
    const files = flakyServer({ root: join(dir, 'srv'), drops: 0, dropAt: 0 });
    await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => files.close(() => r())));
    // node0's watcher, as far as progress goes: records each report's query.
    const reports: URLSearchParams[] = [];
    const watcher = createServer((req, res) => {
      const u = new URL(req.url!, 'http://x');
      if (u.pathname.endsWith('/progress')) reports.push(u.searchParams);
      res.end('ok\n');
    });
    await new Promise<void>((r) => watcher.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => watcher.close(() => r())));
    const plan = await examplePlan('test/e2e/fixtures/lab.config.ts');
    const install = async (seconds: string) => {
      const t = join(dir, `t-${seconds}-${reports.length}-${Date.now()}`);
      await mkdir(t);
      const main = `report() { :; }
PC_PHONE_HOME_URL=http://127.0.0.1:${(watcher.address() as AddressInfo).port}/portacluster/report; NODE_NAME=node1; NODE_MAC=c0:3f:d5:60:e5:a1; PC_NONCE=${'ab'.repeat(16)}
PC_IMAGE_URL=http://127.0.0.1:${(files.address() as AddressInfo).port}/img.tar.zst; PC_IMAGE_SHA256=${img.sha256}; PC_IMAGE_SIZE=${img.size}
trap_errors; install_image; echo OK`;
      const t0 = performance.now();
      const r = await runLibs(plan, main, { PC_TARGET: t, PC_DOWNLOAD_DIR: join(dir, 'dl'), PC_PROGRESS_SECONDS: seconds });
      const ms = performance.now() - t0;
      expect(r.stdout, r.stderr).toContain('OK\n');
      await exec('rm', ['-rf', '--', t]);
      return ms;
    };
    // Reports every 0.2 s: 25 times the default rate, so the cost shows if there is one. Alternated, best of 3.
    const without: number[] = [];
    const withReports: number[] = [];
    for (let i = 0; i < 3; i++) {
      without.push(await install('0'));
      withReports.push(await install('0.2'));
    }
    expect(reports.length).toBeGreaterThanOrEqual(3);
    // The first install's reports: up to its last one, the whole image.
    const one = reports.slice(0, reports.findIndex((p) => p.get('bytes') === String(img.size)) + 1);
    expect(one.length).toBeGreaterThanOrEqual(2);
    const counts = one.map((p) => Number(p.get('bytes')));
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
    expect(counts.at(-1)).toBe(img.size);
    for (const p of reports) {
      expect(p.get('total')).toBe(String(img.size));
      expect(p.get('nonce')).toBe('ab'.repeat(16));
      expect(Number(p.get('rate'))).toBeGreaterThan(0);
    }
    const ratio = Math.min(...withReports) / Math.min(...without);
    console.log(`progress cost: ${(img.size / 2 ** 20).toFixed(0)} MiB image, install ${Math.min(...without).toFixed(0)} ms without reports, ${Math.min(...withReports).toFixed(0)} ms with a report every 0.2 s (${(reports.length / 3).toFixed(1)} reports per install): ratio ${ratio.toFixed(3)}`);
    // Generous against a busy 2-core machine; the figure above is the measurement.
    expect(ratio).toBeLessThan(1.3);
  }, 120_000);
});

describe('image mode: the filesystem image written onto the root partition', () => {
  const KEY_OF_TREE = 'ef'.repeat(32);
  async function fsImage(dir: string) {
    const src = join(dir, 'src');
    await mkdir(join(src, 'etc'), { recursive: true });
    await writeFile(join(src, 'etc/os-release'), 'ID=golden\n');
    // Incompressible bulk so the drop happens mid-stream.
    await writeFile(join(src, 'bulk'), randomBytes(1 << 20));
    const packed = await packFsImage(src, { outDir: join(dir, 'srv'), name: 'img', label: 'root', contentKey: KEY_OF_TREE, sourceDateEpoch: FIXED_EPOCH, zstdLevel: 3, log: memoryLogger() });
    // The root partition: bigger than the image, so resize2fs has something to grow into.
    const root = join(dir, 'root.part');
    await exec('truncate', ['-s', String(packed.imageBytes + 48 * 1024 * 1024), root]);
    await exec('truncate', ['-s', '64M', join(dir, 'esp.part')]);
    return { ...packed, root };
  }
  async function serve(root: string, drops: number) {
    const events: { range: string | null; dropped: boolean }[] = [];
    const server = flakyServer({ root, drops, dropAt: 0.4, onEvent: (e) => events.push(e) });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => server.close(() => r())));
    return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, events };
  }
  const install = (dir: string, img: { fileName: string; sha256: string; size: number; imageBytes: number }, base: string, sha = img.sha256) =>
    `report() { echo "REPORT $1" >> ${dir}/calls; }\nreport_progress() { echo "PROGRESS $*" >> ${dir}/calls; }
fail_install() { echo "FAIL $2" >> ${dir}/calls; exit 1; }
PC_FSIMAGE_URL=${base}/${img.fileName}; PC_FSIMAGE_SHA256=${sha}; PC_FSIMAGE_SIZE=${img.size}; PC_FSIMAGE_BYTES=${img.imageBytes}
PART_DEVS=(${dir}/esp.part ${dir}/root.part); PART_UUIDS=(ESP-UUID '')
trap_errors; install_fs_image; echo "UUID=\${PART_UUIDS[1]}"; NODE_NAME=labbios; fstab_lines
echo "LABEL=$(blkid -c /dev/null -s LABEL -o value -- ${dir}/root.part)"; label_root_complete`;
  const envFor = (dir: string) => ({ PC_TARGET: join(dir, 't'), PC_DOWNLOAD_DIR: join(dir, 'dl') });

  async function expectInstalled(dir: string, stdout: string, root: string) {
    const uuid = /UUID=([0-9a-f-]{36})\n/.exec(stdout)?.[1];
    expect(uuid, stdout).toBeDefined();
    expect(uuid).not.toBe(derivedUuid(KEY_OF_TREE, 'fs-uuid'));
    expect((await exec('blkid', ['-c', '/dev/null', '-s', 'UUID', '-o', 'value', root])).stdout.trim()).toBe(uuid);
    // fstab mounts the root by the node's own UUID, not the image's.
    expect(stdout).toContain(`UUID=ESP-UUID /boot/efi vfat umask=0077 0 0\nUUID=${uuid} / ext4 defaults 0 1\n`);
    await exec('e2fsck', ['-fn', root]);
    const info = (await exec('dumpe2fs', ['-h', root])).stdout;
    const blocks = Number(/^Block count:\s+(\d+)$/m.exec(info)?.[1]) * Number(/^Block size:\s+(\d+)$/m.exec(info)?.[1]);
    expect(blocks).toBe((await stat(root)).size);
    // Written and verified, but not yet complete: the label the OS boots by comes last (label_root_complete).
    expect(stdout).toContain('LABEL=pc-installing\n');
    expect(info).toMatch(/^Filesystem volume name:\s+root$/m);
    expect((await exec('debugfs', ['-R', 'cat /etc/os-release', root])).stdout).toBe('ID=golden\n');
    expect(await readFile(join(dir, 'calls'), 'utf8')).toContain('REPORT download\nREPORT extract\n');
  }

  it('make_filesystems leaves the root partition to the image', async () => {
    const dir = await tmp();
    await exec('truncate', ['-s', '64M', join(dir, 'esp.part')]);
    await writeFile(join(dir, 'root.part'), '');
    const r = await runLibs(await imageModePlan(), `PART_DEVS=(${dir}/esp.part ${dir}/root.part); make_filesystems; echo "[\${PART_UUIDS[0]}][\${PART_UUIDS[1]}]"`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\[[0-9A-F]{4}-[0-9A-F]{4}\]\[\]\n/);
  });

  it('writes, verifies, gives a fresh UUID and grows to the partition', async () => {
    const dir = await tmp();
    const img = await fsImage(dir);
    const { base, events } = await serve(join(dir, 'srv'), 0);
    const r = await runLibs(await imageModePlan(), install(dir, img, base), envFor(dir));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    await expectInstalled(dir, r.stdout, img.root);
    expect(events).toHaveLength(1);
  });

  it('a wrong digest or corrupted bytes: refused, and no filesystem signature left', async () => {
    const plan = await imageModePlan();
    const dir = await tmp();
    const img = await fsImage(dir);
    const { base } = await serve(join(dir, 'srv'), 0);
    // A whole, valid image that is not the one the plan pins: written, then wiped.
    const r = await runLibs(plan, install(dir, img, base, '0'.repeat(64)), envFor(dir));
    expect(r.code).toBe(1);
    expect(await readFile(join(dir, 'calls'), 'utf8')).toContain('FAIL the filesystem image does not match its sha256: refused, and the root partition wiped\n');
    expect((await exec('wipefs', ['--no-act', img.root])).stdout).toBe('');
    await expect(exec('blkid', ['-c', '/dev/null', '-p', img.root])).rejects.toMatchObject({ code: 2 });
    // Superblock, group descriptors and the first inode tables are zeroes, not just the magic.
    const start = (await readFile(img.root)).subarray(0, 64 * 1024 * 1024);
    expect(start.equals(Buffer.alloc(start.length))).toBe(true);
    await expect(exec('e2fsck', ['-n', img.root])).rejects.toThrow();

    // Bytes flipped in transit: zstd stops the stream, the resumed download's digest refuses it.
    const dir2 = await tmp();
    const img2 = await fsImage(dir2);
    const bytes = await readFile(img2.path);
    bytes[bytes.length >> 1]! ^= 0xff;
    await writeFile(img2.path, bytes);
    const { base: base2 } = await serve(join(dir2, 'srv'), 0);
    const r2 = await runLibs(plan, install(dir2, img2, base2), envFor(dir2));
    expect(r2.code).toBe(1);
    expect(await readFile(join(dir2, 'calls'), 'utf8')).toMatch(/FAIL the filesystem image does not match its sha256: refused, and the root partition wiped\n$/);
    expect((await exec('wipefs', ['--no-act', img2.root])).stdout).toBe('');
  });

  it('a dropped connection is resumed and the install succeeds', async () => {
    const dir = await tmp();
    const img = await fsImage(dir);
    const { base, events } = await serve(join(dir, 'srv'), 2);
    const r = await runLibs(await imageModePlan(), install(dir, img, base), envFor(dir));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    await expectInstalled(dir, r.stdout, img.root);
    // Stream broken, full retry broken, then resumed from where it stopped.
    expect(events.map((e) => [e.range !== null, e.dropped])).toEqual([
      [false, true],
      [false, true],
      [true, false],
    ]);
  });

  it('a download that keeps breaking: refused after 10 resumed attempts, and the root partition wiped', async () => {
    const dir = await tmp();
    const img = await fsImage(dir);
    // What a broken stream may have left: a filesystem on the root partition that was never verified.
    await exec('mkfs.ext4', ['-q', '-F', img.root]);
    // Nothing listens on the discard port: every attempt, streamed or resumed, breaks at once.
    const r = await runLibs(await imageModePlan(), install(dir, img, 'http://127.0.0.1:9'), envFor(dir));
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toContain('the filesystem image download failed 10 times');
    expect(await readFile(join(dir, 'calls'), 'utf8')).toMatch(/FAIL the filesystem image could not be downloaded whole: refused, and the root partition wiped\n$/);
    expect((await exec('wipefs', ['--no-act', img.root])).stdout).toBe('');
    await expect(exec('blkid', ['-c', '/dev/null', '-p', img.root])).rejects.toMatchObject({ code: 2 });
  });

  it('refuses a root partition smaller than the image before writing anything', async () => {
    const dir = await tmp();
    const img = await fsImage(dir);
    await exec('truncate', ['-s', String(img.imageBytes - 4096), img.root]);
    const r = await runLibs(await imageModePlan(), install(dir, img, 'http://127.0.0.1:9'), envFor(dir));
    expect(r.code).toBe(1);
    expect(await readFile(join(dir, 'calls'), 'utf8')).toBe(`FAIL the root partition ${img.root} has ${img.imageBytes - 4096} bytes, the filesystem image needs ${img.imageBytes}\n`);
  });
});
