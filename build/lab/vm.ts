/**
 * A lab node: qemu (TCG, so no KVM is needed) on a tap of the lab bridge, network boot first, a qcow2
 * disk on virtio-blk, virtio-rng (entropy for mke2fs and sshd), its serial console in a log file and a
 * monitor socket the lab powers it through. `-no-shutdown` keeps qemu when the guest powers off, so
 * "power on" is a reset + continue on the same process, as a BMC would do it.
 */
import { spawn } from 'node:child_process';
import { copyFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { pidAlive } from '../lib/process.ts';
import { run } from '../lib/run.ts';
import { monitorCommand } from '../power/qemu-monitor.ts';
import { nsExec } from './netns.ts';

export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';

export interface LabVm {
  name: string;
  mac: string;
  firmware: 'bios' | 'uefi';
  tap: string;
  disk: string;
  serialLog: string;
  monitor: string;
  pid: number;
  /** A BMC stand-in the lab started for this node (its spec power is ipmi, …): power goes through it. */
  bmc?: LabBmc;
}

/** A lab BMC stand-in's record: what `lab down` stops and `lab status` shows. */
export interface LabBmc {
  kind: 'ipmi' | 'redfish' | 'pdu';
  pid: number;
  /** Where it listens inside the lab's namespace, e.g. "192.168.10.211:623". */
  address: string;
  log: string;
}

export interface VmOptions {
  name: string;
  mac: string;
  firmware: 'bios' | 'uefi';
  tap: string;
  dir: string;
  memoryMiB: number;
  diskBytes: number;
}

export function qemuArgv(o: VmOptions, files: { disk: string; serialLog: string; monitor: string; vars?: string }): string[] {
  return [
    'qemu-system-x86_64',
    '-name', o.name,
    '-accel', 'tcg',
    '-m', String(o.memoryMiB),
    '-smp', '1',
    '-display', 'none',
    '-serial', `file:${files.serialLog}`,
    '-no-shutdown',
    // Powered off until the lab powers it on (reimage --reboot), as a cabled rack would be.
    '-S',
    '-monitor', `unix:${files.monitor},server,nowait`,
    '-netdev', `tap,id=n0,ifname=${o.tap},script=no,downscript=no`,
    '-device', `virtio-net-pci,netdev=n0,mac=${o.mac},bootindex=1`,
    '-drive', `file=${files.disk},if=none,id=d0,format=qcow2,cache=unsafe`,
    '-device', 'virtio-blk-pci,drive=d0,bootindex=2',
    '-device', 'virtio-rng-pci',
    ...(files.vars ? ['-drive', `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`, '-drive', `if=pflash,format=raw,file=${files.vars}`] : []),
  ];
}

/** Creates the node's disk (kept across `lab down`/`up`, like a real disk) and starts qemu in the background. */
export async function startLabVm(ns: string, o: VmOptions, o2: { freshDisk: boolean }): Promise<LabVm> {
  const files = {
    disk: join(o.dir, `${o.name}.qcow2`),
    serialLog: join(o.dir, `${o.name}.serial.log`),
    monitor: join(o.dir, `${o.name}.monitor`),
    ...(o.firmware === 'uefi' ? { vars: join(o.dir, `${o.name}.OVMF_VARS.fd`) } : {}),
  };
  if (o2.freshDisk) await run(['qemu-img', 'create', '-q', '-f', 'qcow2', files.disk, String(o.diskBytes)]);
  if (files.vars && o2.freshDisk) await copyFile(OVMF_VARS, files.vars);
  const log = await open(join(o.dir, `${o.name}.qemu.log`), 'a');
  const argv = nsExec(ns, qemuArgv(o, files));
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', log.fd, log.fd], detached: true });
  const pid = child.pid;
  child.unref();
  await log.close();
  if (pid === undefined) throw new Error(`qemu for ${o.name} did not start`);
  // qemu creates its monitor socket before the guest runs: wait for it, or for qemu's early exit.
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (await monitorCommand(files.monitor, 'info status').then(() => true, () => false)) break;
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`qemu for ${o.name} exited or did not open its monitor; see ${join(o.dir, `${o.name}.qemu.log`)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { name: o.name, mac: o.mac, firmware: o.firmware, tap: o.tap, disk: files.disk, serialLog: files.serialLog, monitor: files.monitor, pid };
}

/** Stops qemu: quit over the monitor, then SIGKILL if it will not go. */
export async function vmQuit(vm: Pick<LabVm, 'monitor' | 'pid'>): Promise<void> {
  const alive = () => pidAlive(vm.pid);
  if (!alive()) return;
  await monitorCommand(vm.monitor, 'quit', 2000).catch(() => '');
  for (let i = 0; i < 50 && alive(); i++) await new Promise((r) => setTimeout(r, 100));
  if (alive()) process.kill(vm.pid, 'SIGKILL');
}
