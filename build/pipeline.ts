/**
 * The build, as a table of contents: spec → plan → host check → stages into a staging dir → checksums →
 * atomic publish. Each stage takes typed inputs and returns a typed artifact.
 */
import { chmod, lutimes, mkdir, readdir, statfs, symlink, utimes, writeFile } from 'node:fs/promises';
import { StageError } from './lib/errors.ts';
import { insideDir } from './lib/inside-dir.ts';
import { dirname, join, resolve } from 'node:path';
import type { Logger } from './lib/log.ts';
import { checkHost, type StageNeeds } from './lib/host.ts';
import { capture } from './lib/run.ts';
import type { Plan } from './plan/plan.ts';
import { renderDnsmasqConf } from './render/dnsmasq.ts';
import { renderNginxConf } from './render/nginx.ts';
import { renderBootServerDnsmasqConf } from './render/dnsmasq-bootserver.ts';
import { bootServerSite, renderBootServerNginxConf } from './render/nginx-bootserver.ts';
import { renderBootFiles, type BootFiles } from './render/boot-files.ts';
import { bootServerView } from './plan/boot-server-view.ts';
import type { InstallerEnvArtifact } from './plan/artifacts.ts';
import { bootstrapImage, needs as bootstrapNeeds } from './stages/bootstrap-image.ts';
import { packImageCached, needs as packImageNeeds } from './stages/pack-image.ts';
import { packFsImageCached, needs as packFsImageNeeds } from './stages/pack-fsimage.ts';
import { packSquashfsCached, needs as squashfsNeeds } from './stages/pack-squashfs.ts';
import { packDisklessModulesCached } from './stages/pack-diskless-modules.ts';
import { extractBootFiles } from './stages/extract-bootfiles.ts';
import { fetchIso, isoName } from './stages/fetch-iso.ts';
import { extractIso, needs as extractIsoNeeds } from './stages/extract-iso.ts';
import { buildInstallerEnv, needs as installerEnvNeeds } from './stages/build-installer-env.ts';
import { copyBootloaders, needs as bootloaderNeeds } from './stages/copy-bootloaders.ts';
import { checksumTree, type Manifest } from './stages/checksum-tree.ts';
import { createStaging, discardStaging, publishDist } from './stages/publish-dist.ts';
import { checkOutDir } from './stages/check-out-dir.ts';
import { checkRootFits } from './stages/check-root-fits.ts';
import { describeCache } from './lib/cache-dir.ts';
import { addActivity, setActivity, sweepDeadPidDirs } from './lib/cleanup.ts';
import { DNSMASQ_CONF, IMAGES_DIR, bootServerDnsmasqConf, bootServerNginxConf, bootServerPath, MANIFEST_FILE, NGINX_CONF, PXE_DIR, SERVED_SPEC, SUMS_FILE, SYSRCD_DIR, imagePath, pxePath } from './layout.ts';

export interface BuildOptions {
  outDir: string;
  cacheDir: string;
  force: boolean;
  /** Replace a foreign non-empty directory or a served tree with switched node links (see checkOutDir). */
  forceOut?: boolean;
  sourceDateEpoch: number;
  log: Logger;
  /** The spec as written; shipped as SERVED_SPEC so the lifecycle commands on node0 find it. */
  spec?: unknown;
}

export interface BuildResult {
  outDir: string;
  manifest: Manifest;
}

/** Default for reproducible output when SOURCE_DATE_EPOCH is not set: 2024-01-01T00:00:00Z. */
export const DEFAULT_SOURCE_DATE_EPOCH = 1_704_067_200;

/** The host tools of the stages this plan runs, each list owned by its stage. */
export function stageNeeds(plan: Plan): StageNeeds[] {
  return [
    ...bootstrapNeeds(plan.image),
    ...packImageNeeds,
    ...(plan.image.installMode === 'image' ? packFsImageNeeds : []),
    ...(plan.installerEnv.type === 'builtin' ? installerEnvNeeds : extractIsoNeeds),
    ...(plan.diskless ? squashfsNeeds : []),
    ...bootloaderNeeds({ ipxe: plan.boot.loaders.ipxe }),
  ];
}

async function toolVersions(): Promise<Record<string, string>> {
  const packages = ['tar', 'zstd', 'mmdebstrap', 'arch-install-scripts', 'xorriso', 'pxelinux', 'syslinux-efi', 'syslinux-common', 'cpio', 'e2fsprogs', 'squashfs-tools'];
  const out: Record<string, string> = {};
  for (const p of packages) {
    const v = await capture(['dpkg-query', '--showformat=${Version}', '--show', p], { nothrow: true }).catch(() => '');
    if (v) out[p] = v;
  }
  return out;
}

async function installerEnvironment(plan: Plan, staging: string, o: BuildOptions): Promise<InstallerEnvArtifact> {
  const env = plan.installerEnv;
  const pxeDir = join(staging, PXE_DIR);
  if (env.type === 'builtin') {
    return buildInstallerEnv({
      mirror: env.mirror,
      suite: env.suite,
      cacheDir: join(o.cacheDir, 'installer-env'),
      workDir: join(o.cacheDir, 'work'),
      pxeDir,
      force: o.force,
      sourceDateEpoch: o.sourceDateEpoch,
      log: o.log,
    });
  }
  const iso = await fetchIso(env, { cacheDir: join(o.cacheDir, 'downloads'), log: o.log });
  return extractIso(iso, { pxeDir, sysrcdDir: join(staging, SYSRCD_DIR), workDir: join(o.cacheDir, 'work'), log: o.log, source: isoName(env) });
}

async function writeText(root: string, path: string, text: string, mode = 0o644): Promise<void> {
  const full = insideDir(root, path, 'render');
  await mkdir(dirname(full), { recursive: true });
  await writeFile(full, text, { mode });
  await chmod(full, mode);
}

/** One tree's boot files into staging, each tree path placed by `place` (node0's own, or under a boot server's dir). */
async function writeBootFiles(staging: string, boot: BootFiles, place: (treePath: string) => string): Promise<void> {
  for (const [path, f] of Object.entries(boot.files)) await writeText(staging, place(path), f.text, f.mode);
  for (const [path, target] of Object.entries(boot.links)) {
    const full = insideDir(staging, place(path), 'render');
    await mkdir(dirname(full), { recursive: true });
    await symlink(target, full);
  }
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
  // Before any stage: a refused --out must stay exactly as it was.
  await checkOutDir({ outDir: o.outDir, cacheDir: o.cacheDir, nodes: plan.nodes, forceOut: !!o.forceOut });
  // A wrong --cache costs minutes of bootstrap: name it, and say when it holds nothing.
  log.info(await describeCache(o.cacheDir));
  // Work dirs of builds killed earlier (kill -9, power loss): the signal handler never ran for them.
  sweepDeadPidDirs(join(o.cacheDir, 'work'), (p) => log.info(`removing the work dir of an interrupted build: ${p}`));
  let current = 'check host tools';
  const step = <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    current = name;
    setActivity(name);
    return log.step(name, fn);
  };
  await step('check host tools', () => checkHost(stageNeeds(plan)));
  const staging = await createStaging(outDir);
  // The installer environment does not depend on the golden image: bootstrap both at once (each is mostly
  // waiting on mirrors and dpkg; the first build takes about the longer of the two instead of their sum).
  // Its stage writes only into staging/pxe and its own cache; it is awaited before rendering, and on any
  // failure before the staging dir is discarded.
  const endEnvActivity = addActivity('installer environment');
  const envJob = installerEnvironment(plan, staging, { ...o, log: log.beside('installer environment') }).finally(endEnvActivity);
  envJob.catch(() => {});
  try {
    const ctx = { cacheDir: join(o.cacheDir, 'images'), workDir: join(o.cacheDir, 'work'), force: o.force, sourceDateEpoch: o.sourceDateEpoch, log };
    const root = await step('bootstrap image', () => bootstrapImage(plan.image, ctx));
    // An unchanged tree is not packed again: the cached tarball is copied (a reflink where possible).
    const image = await step('pack image', () =>
      packImageCached(root, {
        outDir: join(staging, IMAGES_DIR),
        cacheDir: join(o.cacheDir, 'images'),
        force: o.force,
        name: plan.image.name,
        sourceDateEpoch: o.sourceDateEpoch,
        zstdLevel: plan.image.zstdLevel,
        log,
      }),
    );
    // The tarball is the canonical artifact; the filesystem image is made beside it for image mode only.
    const fsImage =
      plan.image.installMode === 'image'
        ? await step('pack filesystem image', () =>
            packFsImageCached(root.rootDir, { outDir: join(staging, IMAGES_DIR), cacheDir: join(o.cacheDir, 'images'), force: o.force, name: plan.image.name, label: plan.os.rootLabel, contentKey: image.sha256, sourceDateEpoch: o.sourceDateEpoch, zstdLevel: plan.image.zstdLevel, log }),
          )
        : undefined;
    // Before anything is rendered: a root partition no node's disk can make big enough fails the build here.
    if (fsImage) await step('check the image fits the root partition', () => checkRootFits(plan, fsImage.imageBytes));
    const boot = await step('extract kernel and initramfs from the image', () =>
      extractBootFiles(root.rootDir, { distro: plan.image.distro, outDir: join(staging, PXE_DIR), osName: plan.os.name }),
    );
    const diskless = plan.diskless
      ? {
          root: await step('pack the diskless root (squashfs)', () =>
            packSquashfsCached(root, { outDir: join(staging, IMAGES_DIR), cacheDir: ctx.cacheDir, force: o.force, name: plan.image.name, sourceDateEpoch: o.sourceDateEpoch, log }),
          ),
          modules: await step('pack the golden kernel modules for the diskless boot', () =>
            packDisklessModulesCached(root, { pxeDir: join(staging, PXE_DIR), fileName: plan.diskless!.modules, kernelVersion: boot.kernelVersion, workDir: ctx.workDir, cacheDir: ctx.cacheDir, force: o.force, sourceDateEpoch: o.sourceDateEpoch, log }),
          ),
        }
      : null;
    const env = await step('installer environment', () => envJob);
    await step('copy boot loaders', () => copyBootloaders(join(staging, PXE_DIR), { ipxe: plan.boot.loaders.ipxe }));
    await step('render configs and scripts', async () => {
      const arts = { env, image, ...(fsImage ? { fsImage } : {}), ...(diskless ? { disklessRoot: diskless.root } : {}) };
      await writeBootFiles(staging, await renderBootFiles(plan, arts), (p) => p);
      await writeText(staging, DNSMASQ_CONF, renderDnsmasqConf(plan));
      await writeText(staging, NGINX_CONF, renderNginxConf(plan));
      // Each boot server's own tree: the same files rendered from the plan as it sees it (its address, its nodes).
      for (const server of plan.bootServers) {
        await writeBootFiles(staging, await renderBootFiles(bootServerView(plan, server), arts, { server: server.name }), (p) => bootServerPath(server.name, p));
        await writeText(staging, bootServerDnsmasqConf(server.name), renderBootServerDnsmasqConf(plan, server));
        await writeText(staging, bootServerNginxConf(server.name), renderBootServerNginxConf(plan, bootServerSite(plan, server)));
      }
      if (o.spec !== undefined) await writeText(staging, SERVED_SPEC, JSON.stringify(o.spec, null, 2) + '\n');
    });
    await clampTimes(staging, o.sourceDateEpoch);
    const manifest = await step('checksum', async () =>
      checksumTree(staging, {
        portacluster: '1',
        specHash: plan.specHash,
        sourceDateEpoch: o.sourceDateEpoch,
        tools: await toolVersions(),
        artifacts: {
          image: { file: imagePath(image.fileName), sha256: image.sha256, size: image.size, cacheKey: root.cacheKey },
          ...(fsImage ? { fsImage: { file: imagePath(fsImage.fileName), sha256: fsImage.sha256, size: fsImage.size, imageBytes: fsImage.imageBytes } } : {}),
          os: { kernel: pxePath(plan.os.kernel), initramfs: pxePath(plan.os.initramfs), kernelVersion: boot.kernelVersion },
          installerEnv: env,
          ...(diskless
            ? {
                diskless: {
                  root: { file: imagePath(diskless.root.fileName), sha256: diskless.root.sha256, size: diskless.root.size },
                  modules: pxePath(plan.diskless!.modules),
                  kernelVersion: diskless.modules.kernelVersion,
                },
              }
            : {}),
        },
      }),
    );
    await utimes(join(staging, MANIFEST_FILE), o.sourceDateEpoch, o.sourceDateEpoch);
    await utimes(join(staging, SUMS_FILE), o.sourceDateEpoch, o.sourceDateEpoch);
    await chmod(staging, 0o755);
    await step('publish', () => publishDist(staging, outDir));
    return { outDir, manifest };
  } catch (e) {
    const full = isDiskFull(e) ? await diskFullError(e, current, [staging, o.cacheDir]) : null;
    // The parallel job may still be writing into staging: let it finish (its result stays cached).
    await envJob.catch(() => {});
    await discardStaging(staging);
    throw full ?? e;
  }
}

function isDiskFull(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || /no space left on device|disk quota exceeded/i.test(e instanceof Error ? e.message : '');
}

/** Which filesystem filled up, measured before the failed build's files are removed. */
async function diskFullError(e: unknown, stage: string, dirs: string[]): Promise<StageError> {
  const lines: string[] = [];
  for (const dir of dirs) {
    const s = await statfs(dir).catch(() => null);
    if (s) lines.push(`  ${dir}: ${((s.bavail * s.bsize) / 1048576).toFixed(1)} MiB free of ${((s.blocks * s.bsize) / 1048576).toFixed(1)} MiB`);
  }
  const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
  return new StageError(
    stage,
    `no space left on device (${why})\n${lines.join('\n')}\n  nothing was published; the previous dist/ and the cache are as they were\n  hint: free space there, or build with --out/--cache on a larger filesystem`,
  );
}
