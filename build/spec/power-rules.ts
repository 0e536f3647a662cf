/**
 * Rules over nodes[].power and the cluster-wide power: which secret references go together, and where a
 * placeholder would be filled with nothing. The forms are the schema's; the resolution (node's power, else
 * the cluster's, else `reboot`, else ssh) is planCluster's.
 */
import type { SpecIssue } from '../lib/errors.ts';
import type { NormalizedSpec } from './normalized.ts';
import type { PowerSpecT } from './schema.ts';

type Rule = (spec: NormalizedSpec, issues: SpecIssue[]) => void;

/** Every power spec with its path: each node's own, then the cluster-wide one. */
function powers(s: NormalizedSpec): [string, PowerSpecT][] {
  return [...s.nodes.flatMap((n, i): [string, PowerSpecT][] => (n.power ? [[`nodes[${i}].power`, n.power]] : [])), ...(s.power ? [['power', s.power] as [string, PowerSpecT]] : [])];
}

/** Exactly one of two reference fields: a file on node0 or an environment variable. */
function oneOf(out: SpecIssue[], at: string, p: Record<string, unknown>, file: string, env: string, what: string): void {
  const n = Number(p[file] !== undefined) + Number(p[env] !== undefined);
  if (n === 0) out.push({ path: at, message: `needs the ${what}: give ${file} or ${env}`, hint: `${file}: a file on node0 with mode 0600 holding it; ${env}: the environment variable that holds it` });
  if (n === 2) out.push({ path: `${at}.${env}`, message: `give only one of ${file} and ${env}`, hint: 'which one should be read would otherwise depend on the host' });
}

const secrets: Rule = (s, out) => {
  for (const [at, p] of powers(s)) {
    if (p.type === 'ipmi' || p.type === 'redfish') oneOf(out, at, p, 'passwordFile', 'passwordEnv', 'BMC password');
    if (p.type !== 'pdu') continue;
    const v3Fields = ['user', 'authProtocol', 'passwordFile', 'passwordEnv', 'privProtocol', 'privPasswordFile', 'privPasswordEnv'] as const;
    if ((p.version ?? '2c') === '2c') {
      oneOf(out, at, p, 'communityFile', 'communityEnv', 'SNMP v2c write community');
      for (const f of v3Fields)
        if (p[f] !== undefined) out.push({ path: `${at}.${f}`, message: 'is an SNMP v3 field, and this PDU is spoken to with v2c', hint: 'set version: "3", or drop it' });
      continue;
    }
    for (const f of ['communityFile', 'communityEnv'] as const)
      if (p[f] !== undefined) out.push({ path: `${at}.${f}`, message: 'is an SNMP v2c field, and this PDU is spoken to with v3', hint: 'v3 authenticates with user and passwordFile/passwordEnv' });
    if (p.user === undefined) out.push({ path: `${at}.user`, message: 'is required with SNMP v3 (the security name)' });
    oneOf(out, at, p, 'passwordFile', 'passwordEnv', 'SNMP v3 authentication passphrase');
    const privRefs = Number(p.privPasswordFile !== undefined) + Number(p.privPasswordEnv !== undefined);
    if (p.privProtocol !== undefined && privRefs === 0)
      out.push({ path: at, message: 'privProtocol needs the privacy passphrase: give privPasswordFile or privPasswordEnv' });
    if (p.privProtocol === undefined && privRefs > 0)
      out.push({ path: `${at}.privProtocol`, message: 'is required with a privacy passphrase (AES or DES)', hint: 'or drop privPasswordFile/privPasswordEnv for authNoPriv' });
    if (privRefs === 2) out.push({ path: `${at}.privPasswordEnv`, message: 'give only one of privPasswordFile and privPasswordEnv' });
  }
};

/** Where a placeholder sits in a power spec: host, url and every argv element. */
function placeholderUses(p: PowerSpecT, key: string): string[] {
  const at: string[] = [];
  if ((p.type === 'ipmi' || p.type === 'pdu') && p.host.includes(key)) at.push('host');
  if (p.type === 'redfish' && p.url.includes(key)) at.push('url');
  if (p.type === 'command')
    for (const k of ['on', 'off', 'cycle', 'status'] as const) p[k]?.forEach((a, j) => a.includes(key) && at.push(`${k}[${j}]`));
  return at;
}

/** {ip} filled with nothing would reach ipmitool or a command as an empty address: refused where node0 knows none. */
const placeholders: Rule = (s, out) => {
  const proxy = s.dhcp.mode === 'proxy';
  for (const [at, p] of powers(s)) {
    const uses = placeholderUses(p, '{ip}');
    if (!uses.length) continue;
    if (proxy) {
      for (const u of uses) out.push({ path: `${at}.${u}`, message: 'uses {ip}, which node0 does not know in dhcp.mode "proxy"', hint: 'use {name} or {mac}, or write the address' });
      continue;
    }
    // A node's own power fills its own {ip}; the cluster's fills that of every node that has no power of its own.
    const users = at === 'power' ? s.nodes.filter((n) => !n.power) : [s.nodes[Number(/\d+/.exec(at)![0])]!];
    const without = users.filter((n) => n.ip === undefined).map((n) => n.name);
    if (without.length)
      for (const u of uses) out.push({ path: `${at}.${u}`, message: `uses {ip}, and ${without.join(', ')} ${without.length === 1 ? 'has' : 'have'} no ip in the spec`, hint: 'give the node an ip, or use {name} or {mac}' });
  }
};

/** `reboot` is the old spelling of power { type: "command", cycle }: with a power that applies too, one of them would be ignored. */
const rebootAndPower: Rule = (s, out) => {
  s.nodes.forEach((n, i) => {
    if (!n.reboot) return;
    if (n.power) out.push({ path: `nodes[${i}].reboot`, message: 'cannot be given together with nodes[' + i + '].power', hint: 'move the command into power: { type: "command", cycle: [...] }, or drop reboot' });
    else if (s.power) out.push({ path: `nodes[${i}].reboot`, message: 'would be ignored: the cluster-wide power applies to this node', hint: `write nodes[${i}].power: { type: "command", cycle: [...] } to keep this command for this node` });
  });
};

export const POWER_RULES: Rule[] = [secrets, placeholders, rebootAndPower];

/** Every secret file the spec names, with its spec path: `portacluster validate` checks them on node0. */
export function secretFiles(s: NormalizedSpec): { path: string; file: string }[] {
  const fields = ['passwordFile', 'communityFile', 'privPasswordFile'] as const;
  return powers(s).flatMap(([at, p]) =>
    fields.flatMap((f) => {
      const file = (p as Partial<Record<(typeof fields)[number], string>>)[f];
      return file === undefined ? [] : [{ path: `${at}.${f}`, file }];
    }),
  );
}
