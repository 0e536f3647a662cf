/**
 * The built-in installer environment for e2e tests and benchmarks: built once into a cache shared by
 * every test run (`<repo>/.cache/test-installer-env`), reused in seconds afterwards.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { InstallerEnvArtifact } from '../../build/plan/artifacts.ts';
import { createLogger, type Logger } from '../../build/lib/log.ts';
import { buildInstallerEnv, readInstallerEnvMeta, installerEnvCacheEntry, type InstallerEnvMeta } from '../../build/stages/build-installer-env.ts';
import { FIXED_EPOCH } from './workspace.ts';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const TEST_ENV_CACHE = join(REPO_ROOT, '.cache', 'test-installer-env');

export interface TestInstallerEnv {
  artifact: InstallerEnvArtifact;
  /** Absolute paths of the boot files (inside the shared cache's pxe dir: do not modify them). */
  kernel: string;
  initramfs: string;
  /** The TFTP-root-like directory holding both. */
  pxeDir: string;
  meta: InstallerEnvMeta;
}

export async function testInstallerEnv(opts: { log?: Logger; force?: boolean } = {}): Promise<TestInstallerEnv> {
  const pxeDir = join(TEST_ENV_CACHE, 'pxe');
  const o = {
    mirror: process.env.PORTACLUSTER_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian',
    suite: 'bookworm',
    cacheDir: TEST_ENV_CACHE,
    workDir: join(TEST_ENV_CACHE, 'work'),
    pxeDir,
    force: opts.force ?? false,
    sourceDateEpoch: FIXED_EPOCH,
    log: opts.log ?? createLogger(),
  };
  const artifact = await buildInstallerEnv(o);
  return {
    artifact,
    kernel: join(pxeDir, artifact.kernel),
    initramfs: join(pxeDir, artifact.initrds[0]!),
    pxeDir,
    meta: await readInstallerEnvMeta(await installerEnvCacheEntry(o)),
  };
}
