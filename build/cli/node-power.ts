/**
 * How the CLI's commands power a node until the power drivers land: the lab's VM monitor when
 * `portacluster lab up` registered a VM for the node (the same driver the lab's BMC stand-ins use), else
 * the node's legacy `reboot` argv from the spec, else `ssh NODE systemctl reboot|poweroff`.
 *
 * LEAD: swap in `driverFor(node, ctx)` from build/power/registry.ts (branch power-core) here — in
 * watchPower() and in switch.ts's --reboot — and drop rebootArgv's fallback chain.
 */
import { readLab } from '../lab/lab.ts';
import { NoPowerError, type WatchPower } from '../lifecycle/watch.ts';
import { runArgv, type Target } from '../lifecycle/target.ts';
import type { Plan, PlanNode } from '../plan/plan.ts';
import { qemuMonitorDriver } from '../power/qemu-monitor.ts';

/** The node's reboot argv from the spec with {name}, {mac}, {ip} filled in, or `ssh <node> systemctl reboot`. */
export function rebootArgv(node: PlanNode): string[] {
  const fill = (a: string) => a.replace(/\{(name|mac|ip)\}/g, (_m, k: 'name' | 'mac' | 'ip') => node[k] ?? '');
  return node.reboot?.length ? node.reboot.map(fill) : sshPower(node, 'reboot');
}

const sshPower = (node: PlanNode, verb: 'reboot' | 'poweroff') => ['ssh', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', node.name, 'systemctl', verb];

/** The watcher's power (retries, parking), looked up per call: a lab brought up later is found. */
export function watchPower(plan: Pick<Plan, 'cluster'>, target: Target = {}): WatchPower {
  return async (node, action) => {
    const lab = target.host ? null : await readLab(plan.cluster);
    const vm = lab?.vms.find((v) => v.name === node.name);
    if (vm) {
      const driver = qemuMonitorDriver(vm);
      return action === 'off' ? driver.off() : driver.cycle();
    }
    // The lab's nodes are VMs or nothing: an ssh reboot would only time out.
    if (lab) throw new NoPowerError(`no VM for ${node.name} in the lab`);
    // A spec reboot command can only cycle: there is no legacy way to switch such a node off.
    if (action === 'off' && node.reboot?.length) throw new NoPowerError(`the spec gives ${node.name} a reboot command only`);
    const argv = action === 'off' ? sshPower(node, 'poweroff') : rebootArgv(node);
    const r = await runArgv(target, argv, { nothrow: true, timeoutMs: 60_000 });
    if (r.exitCode !== 0) throw new Error(`${argv.join(' ')}: exit ${r.exitCode}: ${r.stderr.trim().split('\n').pop() ?? ''}`);
  };
}
