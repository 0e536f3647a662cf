/**
 * The build, as a table of contents: spec → plan → host check → stages into a staging dir → checksums →
 * atomic publish. Each stage takes typed inputs and returns a typed artifact.
 */
import { chmod, lutimes, mkdir, readdir, symlink, utimes, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Logger } from './lib/log.ts';
import { checkHost, type StageNeeds } from './lib/host.ts';
import { capture } from './lib/run.ts';
import type { Plan } from './plan/plan.ts';
import { renderDnsmasqConf } from './render/dnsmasq.ts';
import { renderNginxConf } from './render/nginx.ts';
import { osProfile, renderPxelinuxTree, type PxeProfile } from './render/pxelinux.ts';
import { installerBootEntry } from './render/installer-append.ts';
import { disklessProfile } from './render/diskless.ts';
import { renderSysrescuecfg } from './render/sysrescuecfg.ts';
import { renderDisklessScript, renderInstallerScript, renderRescueScript } from './render/scripts.ts';
import type { InstallerEnvArtifact } from './iso/types.ts';
import { bootstrapImage } from './stages/bootstrap-image.ts';
import { packImage } from './stages/pack-image.ts';
import { packSquashfs } from './stages/pack-squashfs.ts';
import { packDisklessModulesCached } from './stages/pack-diskless-modules.ts';
import { extractBootFiles } from './stages/extract-bootfiles.ts';
import { fetchIso } from './stages/fetch-iso.ts';
import { extractIso } from './stages/extract-iso.ts';
import { buildInstallerEnv } from './stages/build-installer-env.ts';
import { bootloaderNeeds, copyBootloaders } from './stages/copy-bootloaders.ts';
import { renderIpxeTree } from './render/ipxe.ts';
import { checksumTree, type Manifest } from './stages/checksum-tree.ts';
import { createStaging, discardStaging, publishDist } from './stages/publish-dist.ts';

export interface BuildOptions {
  outDir: string;
  cacheDir: string;
  force: boolean;
  sourceDateEpoch: number;
  log: Logger;
}

export interface BuildResult {
  outDir: string;
  manifest: Manifest;
}

/** Default for reproducible output when SOURCE_DATE_EPOCH is not set: 2024-01-01T00:00:00Z. */
export const DEFAULT_SOURCE_DATE_EPOCH = 1_704_067_200;

export function stageNeeds(plan: Plan): StageNeeds[] {
  const image: StageNeeds = plan.image.rootfs
    ? { stage: 'pack-image', needs: ['tar', 'zstd'] }
    : plan.image.distro === 'debian'
      ? { stage: 'bootstrap-image', needs: ['mmdebstrap', 'tar', 'zstd'] }
      : { stage: 'bootstrap-image', needs: ['pacstrap', 'pacman', 'tar', 'zstd'] };
  const env: StageNeeds =
    plan.installerEnv.type === 'builtin'
      ? { stage: 'build-installer-env', needs: ['mmdebstrap', 'cpio', 'zstd'] }
      : { stage: 'extract-iso', needs: ['xorriso'] };
  const diskless: StageNeeds[] = plan.diskless ? [{ stage: 'pack-squashfs', needs: ['mksquashfs'] }] : [];
  return [image, env, ...diskless, { stage: 'copy-bootloaders', needs: bootloaderNeeds({ ipxe: usesIpxe(plan) }) }];
}

export function usesIpxe(plan: Plan): boolean {
  return plan.boot.loader === 'ipxe' || plan.nodes.some((n) => n.loader === 'ipxe');
}

async function toolVersions(): Promise<Record<string, string>> {
  const packages = ['tar', 'zstd', 'mmdebstrap', 'arch-install-scripts', 'xorriso', 'pxelinux', 'syslinux-efi', 'syslinux-common', 'cpio', 'squashfs-tools'];
  const out: Record<string, string> = {};
  for (const p of packages) {
    const v = await capture(['dpkg-query', '--showformat=${Version}', '--show', p], { nothrow: true }).catch(() => '');
    if (v) out[p] = v;
  }
  return out;
}

async function installerEnvironment(plan: Plan, staging: string, o: BuildOptions): Promise<InstallerEnvArtifact> {
  const env = plan.installerEnv;
  const pxeDir = join(staging, 'pxe');
  if (env.type === 'builtin') {
    return buildInstallerEnv({
      mirror: env.mirror ?? '',
      suite: env.suite ?? 'bookworm',
      cacheDir: join(o.cacheDir, 'installer-env'),
      workDir: join(o.cacheDir, 'work'),
      pxeDir,
      force: o.force,
      sourceDateEpoch: o.sourceDateEpoch,
      log: o.log,
    });
  }
  const iso = await fetchIso(env, { cacheDir: join(o.cacheDir, 'downloads'), log: o.log });
  return extractIso(iso, { pxeDir, sysrcdDir: join(staging, 'sysrcd'), workDir: join(o.cacheDir, 'work'), log: o.log });
}

function bootProfiles(plan: Plan, env: InstallerEnvArtifact): Record<string, PxeProfile> {
  const entry = (profile: 'installer' | 'rescue') => ({
    label: profile,
    ...installerBootEntry(env, {
      adminIp: plan.admin.ip,
      httpBase: plan.admin.httpBase,
      keymap: (plan.installerEnv.type === 'systemrescue' && plan.installerEnv.keymap) || 'us',
      profile,
      ...(profile === 'rescue' && env.kind === 'sysrcd-modern' ? { sysrescuecfgUrl: `${plan.admin.httpBase}/rescue/sysrescue.yaml` } : {}),
      ...(plan.os.serialConsole ? { serialConsole: plan.os.serialConsole } : {}),
    }),
  });
  return { installer: entry('installer'), rescue: entry('rescue'), [plan.os.name]: osProfile(plan), ...(plan.diskless ? { diskless: disklessProfile(plan, env) } : {}) };
}

async function writeText(root: string, path: string, text: string, mode = 0o644): Promise<void> {
  const full = join(root, path);
  await mkdir(dirname(full), { recursive: true });
  await writeFile(full, text, { mode });
  await chmod(full, mode);
}

/** Every file and link gets the same mtime, so rsync and archives of dist/ are reproducible too. */
async function clampTimes(dir: string, epoch: number): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, e.name);
    if (e.isSymbolicLink()) await lutimes(full, epoch, epoch);
    else {
      if (e.isDirectory()) await clampTimes(full, epoch);
      await utimes(full, epoch, epoch);
    }
  }
}

export async function buildDist(plan: Plan, o: BuildOptions): Promise<BuildResult> {
  const { log } = o;
  const outDir = resolve(o.outDir);
  await log.step('check host tools', () => checkHost(stageNeeds(plan)));
  const staging = await createStaging(outDir);
  try {
    const imageSpec = { ...plan.image, mirror: plan.image.mirror ?? '' };
    const ctx = { cacheDir: join(o.cacheDir, 'images'), workDir: join(o.cacheDir, 'work'), force: o.force, sourceDateEpoch: o.sourceDateEpoch, log };
    const root = await log.step('bootstrap image', () => bootstrapImage(imageSpec, ctx));
    const image = await log.step('pack image', () =>
      packImage(root.rootDir, { outDir: join(staging, 'images'), name: plan.image.name, sourceDateEpoch: o.sourceDateEpoch, zstdLevel: plan.image.zstdLevel, log }),
    );
    const boot = await log.step('extract kernel and initramfs from the image', () =>
      extractBootFiles(root.rootDir, { distro: plan.image.distro, outDir: join(staging, 'pxe'), osName: plan.os.name }),
    );
    const diskless = plan.diskless
      ? {
          root: await log.step('pack the diskless root (squashfs)', () =>
            packSquashfs(root.rootDir, { outDir: join(staging, 'images'), name: plan.image.name, sourceDateEpoch: o.sourceDateEpoch, log }),
          ),
          modules: await log.step('pack the golden kernel modules for the diskless boot', () =>
            packDisklessModulesCached(root, { pxeDir: join(staging, 'pxe'), fileName: plan.diskless!.modules, kernelVersion: boot.kernelVersion, workDir: ctx.workDir, cacheDir: ctx.cacheDir, force: o.force, sourceDateEpoch: o.sourceDateEpoch, log }),
          ),
        }
      : null;
    const env = await log.step('installer environment', () => installerEnvironment(plan, staging, o));
    await log.step('copy boot loaders', () => copyBootloaders(join(staging, 'pxe'), { ipxe: usesIpxe(plan) }));
    await log.step('render configs and scripts', async () => {
      const profiles = bootProfiles(plan, env);
      for (const [dir, tree] of [['pxe/pxelinux.cfg', renderPxelinuxTree(plan, profiles)], ['pxe/ipxe', renderIpxeTree(plan, profiles)]] as const) {
        for (const [name, text] of Object.entries(tree.files)) await writeText(staging, `${dir}/${name}`, text);
        for (const [name, target] of Object.entries(tree.links)) await symlink(target, join(staging, dir, name));
      }
      await writeText(staging, 'etc/dnsmasq.conf', renderDnsmasqConf(plan));
      await writeText(staging, 'etc/nginx.conf', renderNginxConf(plan));
      await writeText(staging, 'installer/autorun', await renderInstallerScript(plan, image), 0o755);
      await writeText(staging, 'rescue/autorun', await renderRescueScript(plan), 0o755);
      if (diskless) await writeText(staging, 'diskless/autorun', await renderDisklessScript(plan, diskless.root), 0o755);
      if (env.kind === 'sysrcd-modern') await writeText(staging, 'rescue/sysrescue.yaml', renderSysrescuecfg({ authorizedKeys: plan.rescue.sshKeys, nofirewall: true }));
    });
    await clampTimes(staging, o.sourceDateEpoch);
    const manifest = await log.step('checksum', async () =>
      checksumTree(staging, {
        portacluster: '1',
        specHash: plan.specHash,
        sourceDateEpoch: o.sourceDateEpoch,
        tools: await toolVersions(),
        artifacts: {
          image: { file: `images/${image.fileName}`, sha256: image.sha256, size: image.size, cacheKey: root.cacheKey },
          os: { kernel: `pxe/${plan.os.kernel}`, initramfs: `pxe/${plan.os.initramfs}`, kernelVersion: boot.kernelVersion },
          installerEnv: env,
          ...(diskless
            ? {
                diskless: {
                  root: { file: `images/${diskless.root.fileName}`, sha256: diskless.root.sha256, size: diskless.root.size },
                  modules: `pxe/${plan.diskless!.modules}`,
                  kernelVersion: diskless.modules.kernelVersion,
                },
              }
            : {}),
        },
      }),
    );
    await utimes(join(staging, 'manifest.json'), o.sourceDateEpoch, o.sourceDateEpoch);
    await utimes(join(staging, 'SHA256SUMS'), o.sourceDateEpoch, o.sourceDateEpoch);
    await chmod(staging, 0o755);
    await log.step('publish', () => publishDist(staging, outDir));
    return { outDir, manifest };
  } catch (e) {
    await discardStaging(staging);
    throw e;
  }
}
