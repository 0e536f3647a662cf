/**
 * The built-in installer environment: a Debian kernel + an initramfs holding a whole small root (bash,
 * disk tools, curl, udev, sshd) whose /init follows SystemRescue's autorun contract. Bootstrapped with
 * mmdebstrap, shrunk, packed reproducibly, cached by a hash of everything that goes into it.
 */
import { copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cachedBuild, removeTree } from '../image/cache.ts';
import { registerTemp } from '../lib/cleanup.ts';
import type { InstallerEnvArtifact } from '../plan/artifacts.ts';
import { StageError } from '../lib/errors.ts';
import { checkHost, type StageNeeds } from '../lib/host.ts';
import type { Logger } from '../lib/log.ts';
import { capture } from '../lib/run.ts';
import { bootstrapInstallerRoot, INSTALLER_ENV_PACKAGES } from '../installer-env/bootstrap.ts';
import { packInitramfs, ZSTD_LEVEL } from '../installer-env/pack-initramfs.ts';
import { KEPT_MODULES, pruneModules } from '../installer-env/prune-modules.ts';
import { BUILTIN_DIR, BUILTIN_FILES, installBuiltinFiles, shrinkRoot } from '../installer-env/shrink-root.ts';
import { pidAlive } from '../lib/process.ts';
import { hashInputs } from '../lib/hash.ts';
import { replaceAtomically } from '../lib/atomic.ts';

/** The host tools this stage runs. */
export const needs: StageNeeds[] = [{ stage: 'build-installer-env', needs: ['mmdebstrap', 'cpio', 'zstd'] }];

export interface BuildInstallerEnvOptions {
  /** null: mmdebstrap's own default mirrors. */
  mirror: string | null;
  suite: string;
  cacheDir: string;
  workDir: string;
  pxeDir: string;
  force: boolean;
  sourceDateEpoch: number;
  log: Logger;
}

export const KERNEL_FILE = 'installer-kernel';
export const INITRAMFS_FILE = 'installer-initramfs';

/** Written beside the two boot files in a cache entry. */
export interface InstallerEnvMeta {
  kernelVersion: string;
  initramfsBytes: number;
  rootBytes: number;
  modulesKept: number;
  buildSeconds: number;
  /** The compression alone (absent in entries built before it was recorded). */
  packSeconds?: number;
}

// Everything that decides the bytes of the result; this file only orchestrates and is left out, so a
// change to logging or cache handling does not cost a rebuild.
const SOURCES = [
  ...['bootstrap.ts', 'pack-initramfs.ts', 'prune-modules.ts', 'shrink-root.ts'].map((f) =>
    fileURLToPath(new URL(`../installer-env/${f}`, import.meta.url)),
  ),
  ...Object.keys(BUILTIN_FILES).map((f) => join(BUILTIN_DIR, f)),
];

async function cacheKey(o: BuildInstallerEnvOptions): Promise<string> {
  const sources: Record<string, string> = {};
  for (const f of SOURCES) sources[relative(BUILTIN_DIR, f)] = await readFile(f, 'utf8');
  const firstLine = async (argv: string[]) => (await capture(argv)).split('\n')[0] ?? '';
  return hashInputs({
    v: 1,
    suite: o.suite,
    // "" was how no mirror was keyed before it became null: caches built then stay valid.
    mirror: o.mirror === null ? '' : o.mirror,
    packages: INSTALLER_ENV_PACKAGES,
    modules: KEPT_MODULES,
    zstd: ZSTD_LEVEL,
    sourceDateEpoch: o.sourceDateEpoch,
    sources,
    tools: {
      mmdebstrap: await firstLine(['mmdebstrap', '--version']),
      zstd: await firstLine(['zstd', '--version']),
      cpio: await firstLine(['cpio', '--version']),
    },
  });
}

async function duBytes(dir: string): Promise<number> {
  return Number((await capture(['du', '--summarize', '--bytes', '--', dir])).split(/\s/)[0]);
}

/** Work roots of killed builds: mmdebstrap may have left /proc, /sys and /dev mounted inside them. */
async function sweepWorkRoots(workDir: string, log: Logger): Promise<void> {
  for (const name of await readdir(workDir)) {
    const pid = Number(/^installer-env-root-(\d+)$/.exec(name)?.[1]);
    if (!pid || pid === process.pid || pidAlive(pid)) continue;
    log.info(`removing the work root of an interrupted build: ${join(workDir, name)}`);
    await removeTree(join(workDir, name));
  }
}

async function buildInto(entry: string, o: BuildInstallerEnvOptions): Promise<void> {
  const started = Date.now();
  await mkdir(o.workDir, { recursive: true });
  await sweepWorkRoots(o.workDir, o.log);
  const root = join(o.workDir, `installer-env-root-${process.pid}`);
  await removeTree(root).catch(() => {});
  const unregister = registerTemp(root);
  try {
    await o.log.step('bootstrap installer environment (mmdebstrap)', () => bootstrapInstallerRoot(root, o));
    const kvers = await readdir(join(root, 'usr/lib/modules'));
    const kver = kvers[0];
    if (kvers.length !== 1 || !kver) throw new StageError('build-installer-env', `expected one kernel, found: ${kvers.join(', ') || 'none'}`);
    await copyFile(join(root, 'boot', `vmlinuz-${kver}`), join(entry, KERNEL_FILE));
    const { kept } = await o.log.step('shrink installer environment', async () => {
      const r = await pruneModules(root, kver);
      await shrinkRoot(root);
      await installBuiltinFiles(root);
      return r;
    });
    const rootBytes = await duBytes(root);
    const packStarted = Date.now();
    await o.log.step(`pack installer initramfs (zstd -${ZSTD_LEVEL})`, () =>
      packInitramfs(root, join(entry, INITRAMFS_FILE), o.sourceDateEpoch),
    );
    const packSeconds = Math.round((Date.now() - packStarted) / 100) / 10;
    const meta: InstallerEnvMeta = {
      kernelVersion: kver,
      initramfsBytes: (await stat(join(entry, INITRAMFS_FILE))).size,
      rootBytes,
      modulesKept: kept,
      buildSeconds: Math.round((Date.now() - started) / 100) / 10,
      packSeconds,
    };
    await writeFile(join(entry, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
  } finally {
    await removeTree(root).catch(() => {});
    unregister();
  }
}

export async function readInstallerEnvMeta(entryDir: string): Promise<InstallerEnvMeta> {
  return JSON.parse(await readFile(join(entryDir, 'meta.json'), 'utf8')) as InstallerEnvMeta;
}

/** Copies into place through a temp name, so a reader never sees a half-written boot file. */
async function publish(src: string, dst: string): Promise<void> {
  await replaceAtomically(dst, (tmp) => copyFile(src, tmp));
}

export async function buildInstallerEnv(o: BuildInstallerEnvOptions): Promise<InstallerEnvArtifact> {
  if (process.getuid?.() !== 0) {
    throw new StageError('build-installer-env', 'must run as root (mmdebstrap --mode=root, device nodes and file owners in the initramfs)');
  }
  await checkHost(needs);
  const key = await cacheKey(o);
  const { dir, fromCache } = await cachedBuild({
    area: join(o.cacheDir, 'installer-env'),
    key,
    force: o.force,
    log: o.log,
    build: (tmp) => buildInto(tmp, o),
  });
  const meta = await readInstallerEnvMeta(dir);
  o.log.info(
    `installer environment ${fromCache ? 'reused from cache' : 'built'}: kernel ${meta.kernelVersion}, ` +
      `initramfs ${(meta.initramfsBytes / 1048576).toFixed(1)} MiB (root ${(meta.rootBytes / 1048576).toFixed(0)} MiB unpacked)`,
  );
  await mkdir(o.pxeDir, { recursive: true });
  for (const f of [KERNEL_FILE, INITRAMFS_FILE]) await publish(join(dir, f), join(o.pxeDir, f));
  const distDir = dirname(o.pxeDir);
  return {
    kind: 'builtin',
    version: meta.kernelVersion,
    kernel: KERNEL_FILE,
    initrds: [INITRAMFS_FILE],
    files: [KERNEL_FILE, INITRAMFS_FILE].map((f) => relative(distDir, join(o.pxeDir, f))),
  };
}

/** The cache entry a build with these options uses (for tests and the benchmark). */
export async function installerEnvCacheEntry(o: BuildInstallerEnvOptions): Promise<string> {
  return join(o.cacheDir, 'installer-env', await cacheKey(o));
}
