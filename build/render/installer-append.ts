/**
 * Pure: the pxelinux boot entry (kernel, initrds, APPEND, SYSAPPEND) of an installer environment, per
 * generation, for the installer and rescue profiles. The values come from the plan, whose spec patterns
 * and rules already decided what they may be (httpBase an http:// IP URL, keymap a keymap name); here
 * each is only refused if it would not stay one word: a space, quote or newline would silently split or
 * end a kernel command line.
 */
import type { InstallerEnvArtifact } from '../plan/artifacts.ts';
import { PlanError } from '../lib/errors.ts';
import { cmdlineWord } from '../lib/escape.ts';
import { autorunDir, SYSRCD_DIR, SYSRCD_LEGACY_ROOT, urlFor } from '../layout.ts';

export interface InstallerBootOptions {
  /** e.g. "http://192.168.10.10": an IP, since nothing resolves names this early in the boot. */
  httpBase: string;
  /** SystemRescue's setkmap=; null for the built-in environment, which has no keymap setting. */
  keymap: string | null;
  /** diskless: only for the built-in environment, booted with the golden kernel (build/render/diskless.ts). */
  profile: 'installer' | 'rescue' | 'diskless' | 'discover';
  /** Modern SystemRescue only: the rescue YAML (authorized_keys); required for its rescue profile. */
  sysrescuecfgUrl?: string;
  /** e.g. "ttyS0,115200". */
  serialConsole?: string;
  /**
   * Server DHCP mode: the address whose leases the built-in environment takes (node0, or the node's boot
   * server). Another DHCP server on the segment (a home router plugged in) can answer first; without this
   * the node would take its address, and node0 would refuse every report from it.
   */
  dhcpServer?: string;
}

export interface InstallerBootEntry {
  kernel: string;
  initrds: string[];
  append: string;
  /** pxelinux SYSAPPEND bits: 1 = ip=, 2 = BOOTIF=. */
  sysappend?: number;
}

const word = cmdlineWord;

/** One word, returned without a trailing "/" so paths join with exactly one. */
function url(what: string, value: string): string {
  return word(what, value).replace(/\/+$/, '');
}

/** SystemRescue reads setkmap=; the plan resolves a keymap for every SystemRescue environment. */
function sysrcdKeymap(o: InstallerBootOptions): string {
  if (o.keymap === null) throw new PlanError('installer boot entry: SystemRescue needs a keymap (setkmap=); the plan gives none');
  return word('keymap', o.keymap);
}

export function installerBootEntry(env: InstallerEnvArtifact, o: InstallerBootOptions): InstallerBootEntry {
  const base = url('httpBase', o.httpBase);
  if (!['installer', 'rescue', 'diskless', 'discover'].includes(o.profile)) throw new PlanError(`installer boot entry: unknown profile ${JSON.stringify(o.profile)}`);
  if ((o.profile === 'diskless' || o.profile === 'discover') && env.kind !== 'builtin') throw new PlanError(`installer boot entry: the ${o.profile} profile needs the built-in installer environment`);
  const kernel = word('kernel', env.kernel);
  const initrds = env.initrds.map((i) => word('initrd', i));
  // ar_source is a directory: SystemRescue appends "autorun", "autorun0"… itself.
  const autorun = [`ar_source=${urlFor(base, autorunDir(o.profile))}/`, 'ar_nowait'];
  const console = o.serialConsole !== undefined ? ['console=tty0', `console=${word('serialConsole', o.serialConsole)}`] : [];

  let args: string[];
  let sysappend: number | undefined;
  switch (env.kind) {
    case 'sysrcd-legacy':
      args = ['docache', 'dodhcp', `setkmap=${sysrcdKeymap(o)}`, `netboot=${urlFor(base, SYSRCD_LEGACY_ROOT)}`, ...autorun];
      break;
    case 'sysrcd-modern': {
      args = ['archisobasedir=sysresccd', 'ip=dhcp', `archiso_http_srv=${urlFor(base, SYSRCD_DIR)}/`, 'checksum', `setkmap=${sysrcdKeymap(o)}`, ...autorun];
      if (o.profile === 'rescue') {
        // The default firewall drops incoming SSH, and the YAML carries the rescue user's keys.
        if (o.sysrescuecfgUrl === undefined) throw new PlanError('installer boot entry: the rescue profile of modern SystemRescue needs sysrescuecfgUrl (its ssh keys)');
        args.push('nofirewall', `sysrescuecfg=${url('sysrescuecfgUrl', o.sysrescuecfgUrl)}`);
      }
      // ip= and BOOTIF=, so a multi-NIC node configures the NIC it booted from.
      sysappend = 3;
      break;
    }
    case 'builtin':
      // ar_suffixes= (empty): the built-in init asks for autorun alone, not for autorun0…F too. Each profile
      // publishes one script, and the 16 misses (a connection each after a 404) cost ~1 s of every boot on
      // a TCG vCPU. SystemRescue's own reading of the option is not relied on: its entries keep the default.
      args = [...autorun, 'ar_suffixes=', ...(o.dhcpServer !== undefined ? [`pc_dhcp_server=${word('dhcpServer', o.dhcpServer)}`] : [])];
      // BOOTIF= names the boot NIC; the built-in init does its own DHCP.
      sysappend = 2;
      break;
    default: {
      const never: never = env.kind;
      throw new PlanError(`installer boot entry: unknown environment kind ${JSON.stringify(never)}`);
    }
  }
  return { kernel, initrds, append: [...args, ...console].join(' '), ...(sysappend !== undefined ? { sysappend } : {}) };
}
