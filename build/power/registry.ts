/**
 * One driver per node from its planned power. A node of a lab that is up is powered through its VM's
 * monitor, unless its spec power is one the lab gave a BMC stand-in for (then the spec's driver talks to that
 * stand-in, exactly as it would to real hardware).
 */
import type { PlanNode } from '../plan/plan.ts';
import { commandDriver } from './command.ts';
import { ipmiDriver } from './ipmi.ts';
import { pduDriver } from './pdu.ts';
import { redfishDriver } from './redfish.ts';
import { qemuMonitorDriver } from './qemu-monitor.ts';
import { sshDriver } from './ssh.ts';
import { DEFAULT_CALL_POLICY, type CallPolicy, type PowerDriver } from './types.ts';

export interface DriverContext {
  /** The node's VM when a lab of this cluster is up; null/absent on real hardware. */
  lab?: { name: string; monitor: string; pid: number; bmc?: boolean } | null;
  policy?: CallPolicy;
}

export function driverFor(node: PlanNode, ctx: DriverContext = {}): PowerDriver {
  const policy = ctx.policy ?? DEFAULT_CALL_POLICY;
  // The lab gave this node a BMC stand-in (vm.bmc): drive it through the spec's power, like hardware.
  if (ctx.lab && !ctx.lab.bmc) return qemuMonitorDriver(ctx.lab);
  const p = node.power;
  switch (p.type) {
    case 'ipmi':
      return ipmiDriver(node, p, policy);
    case 'command':
      return commandDriver(node, p, policy);
    case 'ssh':
      return sshDriver(node, policy);
    case 'redfish':
      return redfishDriver(node, p, policy);
    case 'pdu':
      return pduDriver(node, p, policy);
  }
}
