/**
 * The lab's side of power commands. A lab's BMC stand-ins listen inside the lab's network namespace, where
 * node0's address lives, as a real BMC network is reachable from node0 and not from anywhere else. A power
 * command run on the host for such a node is run again inside that namespace (`ip netns exec`), so the
 * same command line works in the lab and on hardware; the alternative, an error telling the user to type
 * `ip netns exec …` themselves, would make every lab walkthrough differ from the real one.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { readLab, type LabRecord } from '../lab/lab.ts';
import { insideNetns } from '../lab/netns.ts';
import type { PlanNode } from '../plan/plan.ts';
import type { DriverContext } from '../power/registry.ts';

export interface LabPower {
  lab: LabRecord | null;
  /** The argv to run this command again inside the lab's namespace, or null when not needed. */
  reexec: string[] | null;
}

export async function labPower(cluster: string, nodes: readonly PlanNode[]): Promise<LabPower> {
  const lab = await readLab(cluster);
  if (!lab) return { lab, reexec: null };
  const needsNs = nodes.some((n) => lab.vms.find((v) => v.name === n.name)?.bmc);
  if (!needsNs || (await insideNetns(lab.netns))) return { lab, reexec: null };
  return { lab, reexec: ['ip', 'netns', 'exec', lab.netns, process.execPath, ...process.execArgv, process.argv[1]!, ...process.argv.slice(2)] };
}

/** The node's lab VM as driverFor wants it (undefined when no lab is up). */
export function labVmFor(lab: LabRecord | null, node: PlanNode): DriverContext['lab'] {
  if (!lab) return undefined;
  const vm = lab.vms.find((v) => v.name === node.name);
  return vm ? { name: vm.name, monitor: vm.monitor, pid: vm.pid, bmc: !!vm.bmc } : null;
}

/** Runs argv with this process's stdio and returns its exit code. */
export function runInherited(argv: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: 'inherit' });
    child.on('error', reject);
    // The shell's convention for a child killed by a signal: 128 + its number.
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : 1)));
  });
}
