/**
 * Every file of the served tree that names the address nodes fetch from: both loaders' profile files, the
 * per-MAC links and defaults beside them, the autorun scripts and the rescue YAML. One pure function of a
 * plan, rendered twice over: with node0's plan for node0's tree, and with each boot server's view
 * (plan/boot-server-view.ts: the server's rack address as admin.httpBase, its nodes only) for that server's
 * tree under etc/servers/<name>/ (layout.ts bootServerPath). So a node behind a server boots a profile
 * that names its server, and its scripts fetch from and report to its server; nothing is templated at
 * boot time, and the paths stay the same in every tree.
 */
import { SYSRESCUE_YAML, autorunPath, urlFor } from '../layout.ts';
import { PlanError } from '../lib/errors.ts';
import type { InstallerEnvArtifact } from '../plan/artifacts.ts';
import type { Plan } from '../plan/plan.ts';
import type { FsImageRef, ImageRef } from './autorun.ts';
import { disklessProfile } from './diskless.ts';
import { installerBootEntry } from './installer-append.ts';
import { renderIpxeTree } from './ipxe.ts';
import { osProfile, renderPxelinuxTree, type PxeProfile } from './pxelinux.ts';
import { renderDiscoverScript, renderDisklessScript, renderInstallerScript, renderRescueScript } from './scripts.ts';
import { renderSysrescuecfg } from './sysrescuecfg.ts';

/** What the stages made that the boot files name: the installer environment and the images with their digests. */
export interface BootArtifacts {
  env: InstallerEnvArtifact;
  image: ImageRef;
  fsImage?: FsImageRef;
  /** The diskless squashfs root, when the plan has the diskless profile. */
  disklessRoot?: ImageRef;
}

export interface BootFiles {
  /** Tree path → contents and mode. */
  files: Record<string, { text: string; mode: number }>;
  /** Tree path of a link → its relative target. */
  links: Record<string, string>;
}

/** Each profile's boot entry: the installer environment's for installer/rescue/discover, the OS's, diskless. */
export function bootProfiles(plan: Plan, env: InstallerEnvArtifact): Record<string, PxeProfile> {
  const entry = (profile: 'installer' | 'rescue' | 'discover') => ({
    label: profile,
    ...installerBootEntry(env, {
      httpBase: plan.admin.httpBase,
      keymap: plan.installerEnv.type === 'systemrescue' ? plan.installerEnv.keymap : null,
      profile,
      ...(profile === 'rescue' && env.kind === 'sysrcd-modern' ? { sysrescuecfgUrl: urlFor(plan.admin.httpBase, SYSRESCUE_YAML) } : {}),
      ...(plan.os.serialConsole ? { serialConsole: plan.os.serialConsole } : {}),
      ...(plan.dhcp.mode === 'server' ? { dhcpServer: plan.admin.ip } : {}),
    }),
  });
  return {
    installer: entry('installer'),
    rescue: entry('rescue'),
    [plan.os.name]: osProfile(plan),
    ...(plan.diskless ? { diskless: disklessProfile(plan, env) } : {}),
    ...(plan.discover ? { discover: entry('discover') } : {}),
  };
}

/**
 * The boot files of one tree. Every node it links must fetch from the base its files name (PlanNode.httpBase):
 * node0's tree links every node (lifecycle commands read it as the record of what each boots), so this is
 * checked only for a boot server's view, where a node from another rack would boot the wrong server's files.
 */
export async function renderBootFiles(plan: Plan, a: BootArtifacts, o: { server?: string } = {}): Promise<BootFiles> {
  if (o.server !== undefined) {
    const stray = plan.nodes.find((n) => n.bootServer !== o.server || n.httpBase !== plan.admin.httpBase);
    if (stray) throw new PlanError(`boot files of boot server ${o.server}: node ${stray.name} boots from ${stray.bootServer ?? 'node0'} (${stray.httpBase}), not from ${plan.admin.httpBase}`);
  }
  const files: BootFiles['files'] = {};
  const links: BootFiles['links'] = {};
  const profiles = bootProfiles(plan, a.env);
  for (const tree of [renderPxelinuxTree(plan, profiles), renderIpxeTree(plan, profiles)]) {
    for (const [name, text] of Object.entries(tree.files)) files[`${tree.dir}/${name}`] = { text, mode: 0o644 };
    for (const [name, target] of Object.entries(tree.links)) links[`${tree.dir}/${name}`] = target;
  }
  const script = (text: string) => ({ text, mode: 0o755 });
  files[autorunPath('installer')] = script(await renderInstallerScript(plan, a.image, a.fsImage));
  files[autorunPath('rescue')] = script(await renderRescueScript(plan));
  if (plan.diskless) {
    if (!a.disklessRoot) throw new PlanError('boot files: the plan has the diskless profile, and no diskless root was packed');
    files[autorunPath('diskless')] = script(await renderDisklessScript(plan, a.disklessRoot));
  }
  if (plan.discover) files[autorunPath('discover')] = script(await renderDiscoverScript(plan));
  if (a.env.kind === 'sysrcd-modern') files[SYSRESCUE_YAML] = { text: renderSysrescuecfg({ authorizedKeys: plan.rescue.sshKeys, nofirewall: true }), mode: 0o644 };
  return { files, links };
}
