/**
 * What the power tests share: a QEMU VM that never needs to boot an OS (-S, no disk, no NIC; powered through
 * its monitor) whose SeaBIOS banner on the debug console counts its boots, and power-call.ts run inside the
 * test's network namespace.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../build/lib/run.ts';
import { monitorCommand, vmPower, type VmPower } from '../../build/power/qemu-monitor.ts';
import { vmQuit } from '../../build/lab/vm.ts';
import type { PowerJob, StepResult } from './power-call.ts';

export interface TestVm {
  name: string;
  monitor: string;
  pid: number;
  /** How many times the firmware started (SeaBIOS prints its banner on the debug console on every boot). */
  boots(): Promise<number>;
  /** boots() once it has not changed for a second (a reset makes SeaBIOS print its banner twice). */
  settledBoots(): Promise<number>;
  power(): Promise<VmPower>;
  quit(): Promise<void>;
}

export async function startTestVm(dir: string, name: string): Promise<TestVm> {
  const monitor = join(dir, `${name}.monitor`);
  const debug = join(dir, `${name}.debugcon.log`);
  // Flags as build/lab/vm.ts's qemuArgv (tcg, -no-shutdown, -S, a monitor socket), minus disk and network.
  const argv = ['-name', name, '-accel', 'tcg', '-m', '32', '-smp', '1', '-display', 'none', '-nodefaults', '-no-shutdown', '-S',
    '-monitor', `unix:${monitor},server,nowait`, '-chardev', `file,id=dbg,path=${debug}`, '-device', 'isa-debugcon,iobase=0x402,chardev=dbg'];
  const child = spawn('qemu-system-x86_64', argv, { stdio: 'ignore', detached: true });
  child.unref();
  const pid = child.pid!;
  for (let i = 0; ; i++) {
    if (await monitorCommand(monitor, 'info status').then(() => true, () => false)) break;
    if (i > 100 || child.exitCode !== null) throw new Error(`qemu for ${name} did not open its monitor`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    name,
    monitor,
    pid,
    boots: async () => ((await readFile(debug, 'latin1').catch(() => '')).match(/SeaBIOS \(version/g) ?? []).length,
    async settledBoots() {
      let last = -1;
      for (;;) {
        const n = ((await readFile(debug, 'latin1').catch(() => '')).match(/SeaBIOS \(version/g) ?? []).length;
        if (n === last) return n;
        last = n;
        await new Promise((r) => setTimeout(r, 1000));
      }
    },
    power: () => vmPower({ monitor, pid }),
    quit: () => vmQuit({ monitor, pid }),
  };
}

const CALL = fileURLToPath(new URL('./power-call.ts', import.meta.url));

/** Runs the job's steps with power-call.ts inside the namespace; env adds variables (secrets by env). */
export async function powerCalls(ns: string, job: PowerJob, env: Record<string, string> = {}): Promise<StepResult[]> {
  const r = await run(['ip', 'netns', 'exec', ns, process.execPath, '--import', 'tsx', CALL, JSON.stringify(job)], { env: { ...process.env, ...env } });
  return r.stdout.trim().split('\n').map((l) => JSON.parse(l) as StepResult);
}

export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<number> {
  const t = Date.now();
  while (!(await check())) {
    if (Date.now() - t > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - t;
}

/** One line per step for the test output: the figures the issue asks for (latency per action and driver). */
export function latencyTable(driver: string, results: StepResult[]): string {
  return results.map((r) => `${driver.padEnd(14)} ${r.step.padEnd(20)} ${String(r.ms).padStart(6)} ms  ${r.ok ? JSON.stringify(r.result) : 'error'}`).join('\n');
}
