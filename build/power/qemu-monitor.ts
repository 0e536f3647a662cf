/**
 * A QEMU VM's power through its HMP monitor socket: the lab's nodes are powered this way (like a BMC
 * would), and the lab's BMC stand-ins (ipmi_sim's start command, the Redfish emulator, the PDU's SNMP
 * handler) drive their VM through the same calls. The VM runs with -no-shutdown, so "off" keeps qemu.
 */
import { connect } from 'node:net';
import { pidAlive } from '../lib/process.ts';
import type { PowerDriver, PowerState } from './types.ts';

/** One HMP command over the monitor socket; resolves with its output (the text before the next prompt). */
export function monitorCommand(socket: string, command: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(socket);
    let buf = '';
    let sent = false;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`the monitor ${socket} did not answer "${command}" within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on('data', (d: Buffer) => {
      buf += d.toString();
      if (!sent && buf.includes('(qemu)')) {
        sent = true;
        buf = '';
        s.write(command + '\n');
      } else if (sent && buf.includes('(qemu)')) {
        clearTimeout(timer);
        s.destroy();
        // The monitor echoes the command with terminal escapes; keep the lines after it.
        const lines = buf.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').split(/\r?\n/);
        resolve(lines.slice(1, -1).join('\n').trim());
      }
    });
  });
}

export type VmPower = 'running' | 'off' | 'paused' | 'gone';

/** running / off (the guest powered off; qemu still there) / gone (no qemu). */
export async function vmPower(vm: { monitor: string; pid: number }): Promise<VmPower> {
  if (!pidAlive(vm.pid)) return 'gone';
  const status = await monitorCommand(vm.monitor, 'info status').catch(() => '');
  if (/running/.test(status)) return 'running';
  // prelaunch: never powered on (-S); shutdown: the guest powered off (-no-shutdown keeps qemu).
  if (/prelaunch|shutdown/.test(status)) return 'off';
  return status ? 'paused' : 'gone';
}

/** Power-cycles the VM into its boot order (network first): a reset, and continue if it was off. */
export async function vmReset(vm: { monitor: string }): Promise<void> {
  await monitorCommand(vm.monitor, 'system_reset');
  await monitorCommand(vm.monitor, 'cont');
}

/** Hard off: the guest stops where it is and is reset, so the next "on" boots from the firmware. */
export async function vmOff(vm: { monitor: string }): Promise<void> {
  await monitorCommand(vm.monitor, 'stop');
  await monitorCommand(vm.monitor, 'system_reset');
}

/** The lab's power driver for one VM: on/off/cycle/status through its monitor, no boot override needed
 *  (the lab's VMs boot the network first). */
export function qemuMonitorDriver(vm: { name: string; monitor: string; pid: number }): PowerDriver {
  const state = async (): Promise<PowerState> => {
    // One read: two would cost a second monitor round-trip and could disagree with the first.
    const p = await vmPower(vm);
    return p === 'running' ? 'on' : p === 'gone' ? 'unknown' : 'off';
  };
  return {
    kind: 'lab',
    describe: `lab VM ${vm.name} (monitor ${vm.monitor})`,
    can: new Set(['on', 'off', 'cycle', 'status']),
    status: state,
    async on() {
      if ((await state()) !== 'on') await vmReset(vm);
    },
    off: () => vmOff(vm),
    cycle: () => vmReset(vm),
  };
}
