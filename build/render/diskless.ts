/**
 * The diskless boot entry: the golden image's own kernel with two initrds, the built-in environment's
 * initramfs and the golden kernel's pruned modules (pxe/<os>-diskless-modules). The kernel unpacks both
 * into one rootfs, so the environment's userland runs with modules matching `uname -r`; its /init fetches
 * diskless/autorun, which downloads and verifies the squashfs root, mounts it under an overlay and asks
 * /init to switch to it. Rendered for pxelinux and iPXE alike from this one entry.
 */
import type { InstallerEnvArtifact } from '../plan/artifacts.ts';
import { PlanError } from '../lib/errors.ts';
import type { Plan } from '../plan/plan.ts';
import { installerBootEntry } from './installer-append.ts';
import type { PxeProfile } from './pxelinux.ts';

export const DISKLESS_PROFILE = 'diskless';

export function disklessProfile(plan: Plan, env: InstallerEnvArtifact): PxeProfile {
  if (!plan.diskless) throw new PlanError('the plan has no diskless profile (boot.diskless is off)');
  if (env.kind !== 'builtin') throw new PlanError('the diskless profile needs the built-in installer environment (installerEnv.type "builtin")');
  const entry = installerBootEntry(
    { ...env, kernel: plan.os.kernel, initrds: [...env.initrds, plan.diskless.modules] },
    {
      httpBase: plan.admin.httpBase,
      keymap: null,
      profile: 'diskless',
      ...(plan.os.serialConsole ? { serialConsole: plan.os.serialConsole } : {}),
      ...(plan.dhcp.mode === 'server' ? { dhcpServer: plan.admin.ip } : {}),
    },
  );
  // The same OS runs as when installed: its kernel arguments apply (validated as single words by the rules).
  return { label: DISKLESS_PROFILE, ...entry, append: [entry.append, ...plan.os.kernelArgs].join(' ') };
}
