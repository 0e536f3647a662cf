/**
 * The watcher's power (retries into the installer, parking): the node's driver from the spec
 * (build/power/registry.ts driverFor), or, for a VM of a lab that is up without a BMC stand-in, its monitor.
 * The watcher runs where node0's services run (in the lab: inside its namespace), so a BMC is reached directly.
 */
import { readLab } from '../lab/lab.ts';
import { NoPowerError, type WatchPower } from '../lifecycle/watch.ts';
import type { Plan } from '../plan/plan.ts';
import { driverFor } from '../power/registry.ts';
import { labVmFor } from './lab-power.ts';

/** Looked up per call: a lab brought up after the watcher started is found. */
export function watchPower(plan: Pick<Plan, 'cluster'>): WatchPower {
  return async (node, action) => {
    const lab = await readLab(plan.cluster);
    const vm = labVmFor(lab, node);
    // The lab's nodes are VMs or nothing: an ssh reboot would only time out.
    if (vm === null) throw new NoPowerError(`no VM for ${node.name} in the lab`);
    const d = driverFor(node, { lab: vm });
    if (action === 'off') {
      if (!d.can.has('off')) throw new NoPowerError(`${node.name}'s ${d.kind} power cannot switch it off`);
      return d.off();
    }
    if (!d.can.has('cycle')) throw new NoPowerError(`${node.name}'s ${d.kind} power cannot cycle it`);
    // Back into the installer: the next boot from the network where the BMC can (best effort, as --reboot).
    if (d.bootOnceFromNetwork) await d.bootOnceFromNetwork().catch(() => null);
    const off = d.can.has('status') && (await d.status()) === 'off';
    return off ? d.on() : d.cycle();
  };
}
