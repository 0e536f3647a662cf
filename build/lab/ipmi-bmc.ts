/**
 * The lab's IPMI BMC stand-in: OpenIPMI's `ipmi_sim` on the node's spec BMC address inside the lab's
 * namespace, speaking real IPMI 2.0 / RMCP+ to ipmitool. It powers the lab's VM (qemu -S -no-shutdown,
 * started and recorded by vm.ts) through lan.conf's `chassis_control` program (ipmi-chassis.mjs), which
 * talks to the VM's monitor. This choice over the two others tried:
 * - ipmi_sim owning qemu (`startcmd` + the VM codec over `ipmi-bmc-extern`): qemu would then start only on
 *   "power on" and die on "power off", so the lab's VM record (pid, monitor, serial log) and `lab down` would
 *   follow a process ipmi_sim respawns; and `chassis bootdev pxe` is still refused there ("Set Chassis Boot
 *   Parameter 4/5 failed: Invalid data field in request"): without chassis_control ipmi_sim has nowhere to keep
 *   boot flags.
 * - chassis_control keeps the VM exactly as without a BMC, and makes boot parameters 4/5 work: `chassis bootdev
 *   pxe` is accepted, stored as "next boot only" and cleared at the next power-on/reset (logged in boot.log).
 * ipmi_sim cannot answer "Get Channel Cipher Suites": ipmitool then waits ~10 s before falling back to suite 3
 * on every call, so lab specs set `cipherSuite: 3` (real BMCs answer the query).
 */
import { spawn } from 'node:child_process';
import { chmod, mkdir, open, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StageError, UsageError } from '../lib/errors.ts';
import { pidAlive } from '../lib/process.ts';
import { run } from '../lib/run.ts';
import type { PlanNode, SecretRef } from '../plan/plan.ts';
import { parseIpv4 } from '../spec/values.ts';
import { readSecret } from '../power/secrets.ts';
import { nsExec } from './netns.ts';
import type { LabBmc, LabVm } from './vm.ts';

const CHASSIS_PROGRAM = resolve(dirname(fileURLToPath(import.meta.url)), 'ipmi-chassis.mjs');

export interface IpmiBmcOptions {
  ns: string;
  /** The lab bridge, where the BMC address is added (as a /32: the BMC network of a real rack, reachable from node0). */
  bridge: string;
  name: string;
  address: string;
  port: number;
  user: string;
  password: SecretRef;
  dir: string;
  vm: Pick<LabVm, 'monitor'>;
}

// lan.conf quotes with "…" and ends a word at blanks; IPMI 2.0 passwords are at most 20 bytes.
const SIM_WORD = /^[\x21\x23-\x5b\x5d-\x7e]{1,20}$/;
// ipmi_sim runs the chassis-control command line through a shell (popen): only plain path characters.
const SHELL_SAFE = /^[A-Za-z0-9._/+@-]+$/;

/** ipmi_sim's lan.conf; without `control` it is a BMC with no chassis to drive (it refuses power and boot parameters). */
export function lanConf(o: { name: string; address: string; port: number; user: string; password: string; control?: string }): string {
  return [
    `name "${o.name}"`,
    'set_working_mc 0x20',
    '  startlan 1',
    `    addr ${o.address} ${o.port}`,
    '    priv_limit admin',
    ...['callback', 'user', 'operator', 'admin'].map((l) => `    allowed_auths_${l} none md2 md5 straight`),
    '    guid a123456789abcdefa123456789abcdef',
    '  endlan',
    ...(o.control ? [`  chassis_control "${o.control}"`] : []),
    `  user 2 true "${o.user}" "${o.password}" admin 10 none md2 md5 straight`,
    '',
  ].join('\n');
}

export const EMU_COMMANDS = ['mc_setbmc 0x20', 'mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr', 'sel_enable 0x20 1000 0x0a', 'mc_enable 0x20', ''].join('\n');

export async function startIpmiBmc(o: IpmiBmcOptions): Promise<LabBmc> {
  const what = `lab BMC for ${o.name}`;
  if (parseIpv4(o.address) === null) throw new UsageError(`${what}: the lab needs an IPv4 address as the BMC host (got ${JSON.stringify(o.address)}); there is no DNS in the lab's namespace`);
  const password = await readSecret(o.password, `${o.name}'s BMC password`);
  if (!SIM_WORD.test(password) || !SIM_WORD.test(o.user)) throw new UsageError(`${what}: ipmi_sim takes a user and password of 1–20 printable characters without blanks, " or \\`);
  const dir = join(o.dir, `${o.name}.bmc`);
  await mkdir(join(dir, 'state'), { recursive: true, mode: 0o700 });
  const control = [process.execPath, CHASSIS_PROGRAM, o.vm.monitor, join(dir, 'boot')];
  const bad = control.find((w) => !SHELL_SAFE.test(w));
  if (bad) throw new UsageError(`${what}: ipmi_sim runs its chassis program through a shell, and ${JSON.stringify(bad)} has characters that would need quoting\n  hint: use a lab --dir path of letters, digits and ._/+@-`);
  const conf = join(dir, 'lan.conf');
  // lan.conf holds the password: owner-only, like the spec's secret file.
  await writeFile(conf, lanConf({ name: o.name, address: o.address, port: o.port, user: o.user, password, control: control.join(' ') }), { mode: 0o600 });
  await chmod(conf, 0o600);
  await writeFile(join(dir, 'emu.cmd'), EMU_COMMANDS);
  const added = await run(['ip', '-n', o.ns, 'addr', 'add', `${o.address}/32`, 'dev', o.bridge], { nothrow: true });
  if (added.exitCode !== 0 && !/File exists/.test(added.stderr)) throw new StageError('lab up', `${what}: cannot add ${o.address} to ${o.bridge}: ${added.stderr.trim()}`);
  const log = join(dir, 'ipmi_sim.log');
  const out = await open(log, 'a');
  const argv = nsExec(o.ns, ['ipmi_sim', '-c', conf, '-f', join(dir, 'emu.cmd'), '-s', join(dir, 'state'), '-n']);
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', out.fd, out.fd], detached: true });
  child.unref();
  await out.close();
  const pid = child.pid;
  if (pid === undefined) throw new StageError('lab up', `${what}: ipmi_sim did not start`);
  // Up when its UDP port is bound in the namespace.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ss = await run(['ip', 'netns', 'exec', o.ns, 'ss', '-Hunl', `sport = :${o.port}`], { nothrow: true });
    if (ss.stdout.includes(`${o.address}:${o.port}`)) break;
    if (!pidAlive(pid) || Date.now() > deadline) throw new StageError('lab up', `${what}: ipmi_sim did not listen on ${o.address}:${o.port}; see ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { kind: 'ipmi', pid, address: `${o.address}:${o.port}`, log };
}

/** The lab's entry for a node whose spec power is ipmi (lab.ts's table of stand-ins). */
export function ipmiStandIn(o: { ns: string; bridge: string; node: PlanNode; dir: string; vm: LabVm }): Promise<LabBmc> {
  const p = o.node.power;
  if (p.type !== 'ipmi') throw new Error(`ipmiStandIn: ${o.node.name} has ${p.type} power`);
  return startIpmiBmc({ ns: o.ns, bridge: o.bridge, name: o.node.name, address: p.host, port: p.port, user: p.user, password: p.password, dir: o.dir, vm: o.vm });
}
