/**
 * A node VM: qemu (TCG only) on a tap of the lab bridge, PXE first (bootindex=1), a qcow2 disk on
 * virtio-blk, virtio-rng (entropy for mke2fs and sshd), a serial log file and a monitor socket.
 */
import { type ChildProcess } from 'node:child_process';
import { copyFile, readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { run } from '../../../build/lib/run.ts';
import type { Netns } from './netns.ts';

import { OVMF_CODE, OVMF_VARS } from '../../../build/lab/vm.ts';

export { OVMF_CODE, OVMF_VARS };

export interface VmOptions {
  name: string;
  mac: string;
  firmware: 'bios' | 'uefi';
  disk: string;
  tap: string;
  dir: string;
  /** The NIC's option ROM; "" runs the firmware's own network stack instead of the iPXE ROM. */
  romfile?: string;
  /** More qemu arguments, e.g. firmware settings through -fw_cfg. */
  extraArgs?: string[];
  /** The first disk's serial (its /dev/disk/by-id/virtio-<serial> name in the guest). */
  diskSerial?: string;
}

export interface Vm {
  name: string;
  serialLog: string;
  /** The HMP monitor socket (the lab's power: lifecycle power-cycles and parks nodes through it). */
  monitor: string;
  started: number;
  child: ChildProcess;
  /** Resolves with the exit code when qemu ends (power-off with -no-reboot). */
  exited: Promise<number | null>;
  /** Polls the serial log until `re` matches; rejects after timeoutMs or when qemu exits first. */
  waitSerial(re: RegExp, timeoutMs: number): Promise<number>;
  serialTail(lines?: number): Promise<string>;
  quit(): Promise<void>;
}

export async function createDisk(path: string, size = '4G'): Promise<void> {
  await run(['qemu-img', 'create', '-q', '-f', 'qcow2', path, size]);
}

export async function startVm(ns: Netns, o: VmOptions): Promise<Vm> {
  const serialLog = join(o.dir, `${o.name}.serial.log`);
  const monitor = join(o.dir, `${o.name}.monitor`);
  const argv = [
    'qemu-system-x86_64',
    '-accel', 'tcg',
    '-m', '1024',
    '-smp', '1',
    '-display', 'none',
    '-serial', `file:${serialLog}`,
    '-no-reboot',
    '-monitor', `unix:${monitor},server,nowait`,
    '-netdev', `tap,id=n0,ifname=${o.tap},script=no,downscript=no`,
    '-device', `virtio-net-pci,netdev=n0,mac=${o.mac},bootindex=1${o.romfile !== undefined ? `,romfile=${o.romfile}` : ''}`,
    '-drive', `file=${o.disk},if=none,id=d0,format=qcow2,cache=unsafe`,
    '-device', `virtio-blk-pci,drive=d0${o.diskSerial ? `,serial=${o.diskSerial}` : ''}`,
    '-device', 'virtio-rng-pci',
  ];
  if (o.firmware === 'uefi') {
    const vars = join(o.dir, `${o.name}.OVMF_VARS.fd`);
    await copyFile(OVMF_VARS, vars);
    argv.push('-drive', `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`, '-drive', `if=pflash,format=raw,file=${vars}`);
  }
  argv.push(...(o.extraArgs ?? []));
  const started = Date.now();
  const child = ns.spawn(argv);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let done = false;
  void exited.then(() => (done = true));
  const read = () => readFile(serialLog, 'utf8').catch(() => '');
  const vm: Vm = {
    name: o.name,
    serialLog,
    monitor,
    started,
    child,
    exited,
    async waitSerial(re, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (re.test(await read())) return (Date.now() - started) / 1000;
        if (done) throw new Error(`${o.name}: qemu exited before the serial console showed ${re} ${stderr}`);
        if (Date.now() > deadline) throw new Error(`${o.name}: no ${re} on the serial console within ${timeoutMs / 1000} s`);
        await new Promise((r) => setTimeout(r, 250));
      }
    },
    async serialTail(lines = 40) {
      // syslinux.efi prints with bare carriage returns: make them lines.
      return (await read()).replace(/\r\n?/g, '\n').split('\n').slice(-lines).join('\n');
    },
    async quit() {
      if (done) return;
      // Ask qemu to quit over its monitor; never wait on the monitor socket itself (a half-closed unix
      // socket can stay open after qemu is gone), only on qemu's exit, and kill it if it will not go.
      const s = connect(monitor);
      s.on('error', () => {});
      s.on('connect', () => s.write('quit\n'));
      const gone = (ms: number) => Promise.race([exited, new Promise((r) => setTimeout(r, ms))]);
      await gone(5000);
      s.destroy();
      if (!done) child.kill('SIGKILL');
      await gone(5000);
      if (!done) throw new Error(`${o.name}: qemu (pid ${child.pid}) did not exit after quit and SIGKILL`);
    },
  };
  return vm;
}
