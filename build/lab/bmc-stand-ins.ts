/**
 * The lab's Redfish and PDU stand-ins as the lab starts them for a node, from the node's planned power:
 * the BMC's (or PDU's) address goes onto the lab bridge inside the namespace, the secret the spec names is
 * read once and handed to the stand-in the way it takes it, and the stand-in drives the node's VM through
 * its monitor. The IPMI stand-in has its own module (ipmi-bmc.ts); lab.ts keys all three by power type.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StageError, UsageError } from '../lib/errors.ts';
import { run } from '../lib/run.ts';
import { APC_OUTLET_CTL, type PlanNode } from '../plan/plan.ts';
import { readSecret } from '../power/secrets.ts';
import { parseIpv4 } from '../spec/values.ts';
import { startPduAgent } from './pdu-agent.ts';
import { startRedfishBmc } from './redfish-bmc.ts';
import type { LabBmc, LabVm } from './vm.ts';

export interface StandInOptions {
  ns: string;
  bridge: string;
  node: PlanNode;
  dir: string;
  vm: LabVm;
  /** The stand-ins this lab started before this one. */
  others: readonly LabBmc[];
}

/** Puts a BMC's address on the lab bridge (as a /32: the lab's node0 reaches it on the same segment). */
export async function addLabAddress(ns: string, bridge: string, address: string, what: string): Promise<void> {
  if (parseIpv4(address) === null) throw new UsageError(`${what}: the lab needs an IPv4 address as the host (got ${JSON.stringify(address)}); there is no DNS in the lab's namespace`);
  const added = await run(['ip', '-n', ns, 'addr', 'add', `${address}/32`, 'dev', bridge], { nothrow: true });
  if (added.exitCode !== 0 && !/File exists/.test(added.stderr)) throw new StageError('lab up', `${what}: cannot add ${address} to ${bridge}: ${added.stderr.trim()}`);
}

export async function redfishStandIn(o: StandInOptions): Promise<LabBmc> {
  const p = o.node.power;
  if (p.type !== 'redfish') throw new Error(`redfishStandIn: ${o.node.name} has ${p.type} power`);
  const url = new URL(p.url);
  const what = `lab Redfish BMC for ${o.node.name}`;
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  await addLabAddress(o.ns, o.bridge, url.hostname, what);
  const dir = join(o.dir, `${o.node.name}.bmc`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // The emulator reads the password from a file: an owner-only copy of what the spec names.
  const passwordFile = join(dir, 'redfish.password');
  await writeFile(passwordFile, (await readSecret(p.password, `${o.node.name}'s BMC password`)) + '\n', { mode: 0o600 });
  await chmod(passwordFile, 0o600);
  const r = await startRedfishBmc({ ns: o.ns, name: o.node.name, address: url.hostname, port, user: p.user, passwordFile, dir: o.dir, vm: o.vm, ...(p.systemId ? { systemId: p.systemId } : {}) });
  return { kind: 'redfish', pid: r.pid, address: `${url.hostname}:${port}`, log: r.log };
}

/**
 * One SNMP agent per node: the lab's PDU serves the outlets of the node it was started for. Two lab
 * nodes on one PDU address would need one agent for both; say so instead of failing on a taken port.
 */
export async function pduStandIn(o: StandInOptions): Promise<LabBmc> {
  const p = o.node.power;
  if (p.type !== 'pdu') throw new Error(`pduStandIn: ${o.node.name} has ${p.type} power`);
  const what = `lab PDU for ${o.node.name}`;
  const key = `${p.host}:${p.port}`;
  if (o.others.some((b) => b.kind === 'pdu' && b.address === key)) throw new UsageError(`${what}: another lab node already has the PDU at ${key}; the lab's PDU stand-in serves one node per address\n  hint: give each lab node its own PDU host`);
  if (p.scheme.oid !== APC_OUTLET_CTL.oid) throw new UsageError(`${what}: the lab's PDU stand-in speaks APC PowerNet-MIB only; set scheme: "apc" in the lab spec`);
  await addLabAddress(o.ns, o.bridge, p.host, what);
  const vm = { name: o.vm.name, monitor: o.vm.monitor, pid: o.vm.pid };
  const r = await startPduAgent({
    ns: o.ns,
    address: p.host,
    port: p.port,
    ...(p.version === '2c' && p.community ? { community: p.community } : {}),
    ...(p.version === '3' && p.user && p.auth
      ? { v3: { user: p.user, authProtocol: p.authProtocol ?? 'SHA', auth: p.auth, ...(p.privProtocol && p.priv ? { privProtocol: p.privProtocol, priv: p.priv } : {}) } }
      : {}),
    dir: o.dir,
    outlets: Object.fromEntries(p.outlets.map((n) => [n, vm])),
  });
  return { kind: 'pdu', pid: r.pid, address: key, log: r.log };
}
