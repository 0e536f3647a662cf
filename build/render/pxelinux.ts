/** pxelinux.cfg/ files: one per profile, read alike by pxelinux.0 (BIOS) and syslinux.efi (UEFI). */
import { cmdlineLine, pxelinuxWord } from '../lib/escape.ts';
import { PlanError } from '../lib/errors.ts';
import type { Plan } from '../plan/plan.ts';
import { DEFAULT_LINK, PXELINUX_DIR, pxelinuxNodeFile } from '../layout.ts';

export interface PxeEntry {
  label: string;
  /** Path relative to the TFTP root. */
  kernel: string;
  initrds: string[];
  append: string;
  /** pxelinux SYSAPPEND bits: 1 = ip=, 2 = BOOTIF=. */
  sysappend?: number;
}

export type PxeProfile = PxeEntry | { label: string; localboot: true };

export function renderPxelinuxConfig(profile: PxeProfile, o: { timeout: number; serial: Plan['os']['pxelinuxSerial'] }): string {
  const label = pxelinuxWord('label', profile.label);
  const lines = [`# portacluster: profile ${label} — generated; do not edit`];
  if (o.serial) lines.push(`SERIAL ${o.serial.port} ${o.serial.speed}`);
  lines.push('PROMPT 0', `TIMEOUT ${o.timeout}`, `DEFAULT ${label}`, '', `LABEL ${label}`);
  if ('localboot' in profile) {
    lines.push('        LOCALBOOT 0');
  } else {
    lines.push(`        LINUX /${pxelinuxWord('kernel', profile.kernel)}`);
    if (profile.initrds.length) lines.push(`        INITRD ${profile.initrds.map((i) => '/' + pxelinuxWord('initrd', i)).join(',')}`);
    lines.push(`        APPEND ${cmdlineLine('APPEND', profile.append)}`);
    if (profile.sysappend) lines.push(`        SYSAPPEND ${profile.sysappend}`);
  }
  return lines.join('\n') + '\n';
}

/** The installed OS: kernel + initramfs from node0 with root= the root partition's label, or the local disk. */
export function osProfile(plan: Plan): PxeProfile {
  if (plan.os.bootFrom === 'disk') return { label: plan.os.name, localboot: true };
  const console = plan.os.serialConsole ? ['console=tty0', `console=${plan.os.serialConsole}`] : [];
  return {
    label: plan.os.name,
    kernel: plan.os.kernel,
    initrds: [plan.os.initramfs],
    append: [`root=LABEL=${plan.os.rootLabel}`, 'rw', ...console, ...plan.os.kernelArgs].join(' '),
  };
}

export interface PxelinuxTree {
  /** Where the tree goes, relative to the served root. */
  dir: typeof PXELINUX_DIR;
  /** File name under dir → contents. */
  files: Record<string, string>;
  /** Link name under dir → relative target. */
  links: Record<string, string>;
}

export function renderPxelinuxTree(plan: Plan, profiles: Record<string, PxeProfile>): PxelinuxTree {
  const files: Record<string, string> = {};
  for (const name of plan.profiles.all) {
    const profile = profiles[name];
    if (!profile) throw new PlanError(`pxelinux: no boot entry for profile ${name}`);
    files[name] = renderPxelinuxConfig(profile, { timeout: plan.boot.timeout, serial: plan.os.pxelinuxSerial });
  }
  const links: Record<string, string> = { [DEFAULT_LINK]: plan.profiles.default };
  for (const node of plan.nodes) links[pxelinuxNodeFile(node.mac)] = node.profile;
  return { dir: PXELINUX_DIR, files, links };
}
