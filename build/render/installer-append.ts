/**
 * Pure: the pxelinux boot entry (kernel, initrds, APPEND, SYSAPPEND) of an installer environment, per
 * generation, for the installer and rescue profiles. Every value is checked to be one word: a space,
 * quote or newline would silently split or end a kernel command line.
 */
import type { InstallerEnvArtifact } from '../plan/artifacts.ts';
import { StageError } from '../lib/errors.ts';
import { cmdlineWord } from '../lib/escape.ts';
import { matches } from '../spec/patterns.ts';
import { autorunDir, SYSRCD_DIR, SYSRCD_LEGACY_ROOT, urlFor } from '../layout.ts';

export interface InstallerBootOptions {
  adminIp: string;
  /** e.g. "http://192.168.10.10": an IP, since nothing resolves names this early in the boot. */
  httpBase: string;
  keymap: string;
  /** diskless: only for the built-in environment, booted with the golden kernel (build/render/diskless.ts). */
  profile: 'installer' | 'rescue' | 'diskless';
  /** Modern SystemRescue only: the rescue YAML (authorized_keys); required for its rescue profile. */
  sysrescuecfgUrl?: string;
  /** e.g. "ttyS0,115200". */
  serialConsole?: string;
}

export interface InstallerBootEntry {
  kernel: string;
  initrds: string[];
  append: string;
  /** pxelinux SYSAPPEND bits: 1 = ip=, 2 = BOOTIF=. */
  sysappend?: number;
}

const word = cmdlineWord;

/** An http:// URL whose host is an IPv4 address (optionally with a port); returned without a trailing "/". */
function ipUrl(what: string, value: string): string {
  word(what, value);
  const m = value.match(/^http:\/\/([^/:]+)(:\d{1,5})?(\/[^?#]*)?$/);
  if (!m || !matches('ipv4', m[1]!))
    throw new StageError('render', `installer boot entry: ${what} must be an http:// URL with an IP address, not a host name (nothing resolves names before the environment is up) (got ${JSON.stringify(value)})`);
  return value.replace(/\/+$/, '');
}

export function installerBootEntry(env: InstallerEnvArtifact, o: InstallerBootOptions): InstallerBootEntry {
  if (!matches('ipv4', o.adminIp)) throw new StageError('render', `installer boot entry: adminIp must be an IPv4 address (got ${JSON.stringify(o.adminIp)})`);
  const base = ipUrl('httpBase', o.httpBase);
  const keymap = word('keymap', o.keymap);
  if (!matches('keymap', keymap)) throw new StageError('render', `installer boot entry: keymap is not a keymap name (got ${JSON.stringify(keymap)})`);
  if (o.profile !== 'installer' && o.profile !== 'rescue' && o.profile !== 'diskless') throw new StageError('render', `installer boot entry: unknown profile ${JSON.stringify(o.profile)}`);
  if (o.profile === 'diskless' && env.kind !== 'builtin') throw new StageError('render', 'installer boot entry: the diskless profile needs the built-in installer environment');
  const kernel = word('kernel', env.kernel);
  const initrds = env.initrds.map((i) => word('initrd', i));
  // ar_source is a directory: SystemRescue appends "autorun", "autorun0"… itself.
  const autorun = [`ar_source=${urlFor(base, autorunDir(o.profile))}/`, 'ar_nowait'];
  const console = o.serialConsole !== undefined ? ['console=tty0', `console=${word('serialConsole', o.serialConsole)}`] : [];

  let args: string[];
  let sysappend: number | undefined;
  switch (env.kind) {
    case 'sysrcd-legacy':
      args = ['docache', 'dodhcp', `setkmap=${keymap}`, `netboot=${urlFor(base, SYSRCD_LEGACY_ROOT)}`, ...autorun];
      break;
    case 'sysrcd-modern': {
      args = ['archisobasedir=sysresccd', 'ip=dhcp', `archiso_http_srv=${urlFor(base, SYSRCD_DIR)}/`, 'checksum', `setkmap=${keymap}`, ...autorun];
      if (o.profile === 'rescue') {
        // The default firewall drops incoming SSH, and the YAML carries the rescue user's keys.
        if (o.sysrescuecfgUrl === undefined) throw new StageError('render', 'installer boot entry: the rescue profile of modern SystemRescue needs sysrescuecfgUrl (its ssh keys)');
        args.push('nofirewall', `sysrescuecfg=${ipUrl('sysrescuecfgUrl', o.sysrescuecfgUrl)}`);
      }
      // ip= and BOOTIF=, so a multi-NIC node configures the NIC it booted from.
      sysappend = 3;
      break;
    }
    case 'builtin':
      args = [...autorun];
      // BOOTIF= names the boot NIC; the built-in init does its own DHCP.
      sysappend = 2;
      break;
    default: {
      const never: never = env.kind;
      throw new StageError('render', `installer boot entry: unknown environment kind ${JSON.stringify(never)}`);
    }
  }
  return { kernel, initrds, append: [...args, ...console].join(' '), ...(sysappend !== undefined ? { sysappend } : {}) };
}
