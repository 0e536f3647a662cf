/**
 * iPXE scripts, from the same profiles as pxelinux.cfg/: boot.ipxe (what dnsmasq hands iPXE clients)
 * chains the per-MAC script pxe/ipxe/01-<mac>.ipxe, a link to the node's profile script — switched together
 * with its pxelinux.cfg link, so one operation decides what a node boots. Everything after the loader
 * travels over HTTP.
 */
import { cmdlineLine, ipxeLine, ipxeWord as word } from '../lib/escape.ts';
import { PlanError } from '../lib/errors.ts';
import type { Plan } from '../plan/plan.ts';
import type { PxeProfile } from './pxelinux.ts';
import { DEFAULT_LINK, IPXE_BOOT_FILE, IPXE_DEFAULT_LINK, IPXE_DIR, IPXE_NODE_EXPANSION, ipxeNodeFile, ipxePath, ipxeProfileFile, pxePath, urlFor } from '../layout.ts';

export function renderIpxeProfile(profile: PxeProfile, o: { httpBase: string }): string {
  const lines = ['#!ipxe', `# portacluster: profile ${word('label', profile.label)} — generated; do not edit`];
  if ('localboot' in profile) {
    // Leave iPXE: the firmware goes on to the next boot device, the local disk.
    lines.push('exit');
  } else {
    const append = ipxeLine('kernel arguments', cmdlineLine('kernel arguments', profile.append));
    const url = (f: string) => urlFor(word('httpBase', o.httpBase), pxePath(word('file', f)));
    // UEFI kernels find their initrds by name: initrd=<basename> for each.
    const initrdArgs = profile.initrds.map((i) => `initrd=${word('initrd', i).split('/').pop()}`);
    // BOOTIF's ${…} is ours, added after the check: iPXE expands it to the booting NIC's MAC.
    const bootif = profile.sysappend && profile.sysappend & 2 ? ['BOOTIF=01-${netX/mac:hexhyp}'] : [];
    lines.push(`kernel ${url(profile.kernel)} ${[...initrdArgs, append, ...bootif].join(' ')}`);
    for (const i of profile.initrds) lines.push(`initrd ${url(i)}`);
    lines.push('boot');
  }
  return lines.join('\n') + '\n';
}

export interface IpxeTree {
  /** Where the tree goes, relative to the served root. */
  dir: typeof IPXE_DIR;
  /** File name under dir → contents. */
  files: Record<string, string>;
  /** Link name under dir → relative target. */
  links: Record<string, string>;
}

export function renderIpxeTree(plan: Plan, profiles: Record<string, PxeProfile>): IpxeTree {
  const base = word('admin.httpBase', plan.admin.httpBase);
  const files: Record<string, string> = {
    [IPXE_BOOT_FILE]: [
      '#!ipxe',
      '# portacluster: entry point handed to iPXE clients by dnsmasq — generated; do not edit',
      `chain ${urlFor(base, ipxePath(IPXE_NODE_EXPANSION))} || chain ${urlFor(base, ipxePath(IPXE_DEFAULT_LINK))}`,
      '',
    ].join('\n'),
  };
  for (const name of plan.profiles.all) {
    const profile = profiles[name];
    if (!profile) throw new PlanError(`iPXE: no boot entry for profile ${name}`);
    files[ipxeProfileFile(name)] = renderIpxeProfile(profile, { httpBase: plan.admin.httpBase });
  }
  const links: Record<string, string> = { [ipxeProfileFile(DEFAULT_LINK)]: ipxeProfileFile(plan.profiles.default) };
  for (const node of plan.nodes) links[ipxeNodeFile(node.mac)] = ipxeProfileFile(node.profile);
  return { dir: IPXE_DIR, files, links };
}
