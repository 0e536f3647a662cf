/**
 * Stage: bootstrap the golden image's root tree with the distro's own tool, strip per-node identity,
 * and keep the result in a content-hash cache so an unchanged spec costs seconds.
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, readlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { HostToolError, StageError } from '../lib/errors.ts';
import { archBackend } from '../image/arch.ts';
import { cachedBuild, removeTree } from '../image/cache.ts';
import { debianBackend } from '../image/debian.ts';
import { makeGeneric } from '../image/generic.ts';
import type { BootstrapBackend, BootstrappedImage, ImageBuildContext } from '../image/types.ts';
import { lookUpHost, type StageNeeds } from '../lib/host.ts';
import type { ImageSpec } from '../plan/plan.ts';
import { hashInputs } from '../lib/hash.ts';

const STAGE = 'bootstrap-image';
/** Bump when a backend changes what it produces for the same inputs: old entries stop matching. */
const RECIPE_VERSION = 1;

/** The host tools this stage runs: the backend's, unless a prepared tree (image.rootfs) is used as is. */
export function needs(image: Pick<ImageSpec, 'distro' | 'rootfs'>): StageNeeds[] {
  return image.rootfs ? [] : [{ stage: STAGE, needs: [...backendFor(image.distro).tools] }];
}

export function backendFor(distro: ImageSpec['distro']): BootstrapBackend {
  switch (distro) {
    case 'debian':
      return debianBackend;
    case 'arch':
      return archBackend;
    default:
      throw new StageError(STAGE, `no bootstrap backend for distro ${JSON.stringify(distro)}`);
  }
}

/** Every problem at once, before anything is written. */
export async function checkBootstrapHost(
  backend: BootstrapBackend,
  opts: { path?: string; uid?: number } = {},
): Promise<void> {
  const problems: string[] = [];
  const uid = opts.uid ?? process.getuid?.() ?? 0;
  if (uid !== 0) {
    problems.push(`${STAGE} must run as root: ${backend.distro} images hold files of many owners and device nodes (run with sudo)`);
  }
  const { missing } = await lookUpHost([{ stage: STAGE, needs: backend.tools }], opts.path);
  if (missing.length) problems.push(`missing host tools (nothing was written):\n${missing.join('\n')}`);
  if (problems.length) throw new HostToolError(problems.join('\n'));
}

/** The cache key of a spec: everything that decides the tree, nothing that does not. */
export async function imageCacheKey(spec: ImageSpec, ctx: Pick<ImageBuildContext, 'sourceDateEpoch'>): Promise<string> {
  const backend = backendFor(spec.distro);
  const inputs = {
    recipe: RECIPE_VERSION,
    distro: spec.distro,
    release: spec.release,
    // "" was how Debian's default mirror was keyed before it became null: images cached then stay valid.
    mirror: spec.mirror === null ? '' : spec.mirror,
    packages: [...new Set([...backend.basePackages, ...spec.packages])].sort(),
    components: spec.distro === 'debian' ? spec.components : undefined,
    repos: spec.distro === 'arch' ? spec.repos : undefined,
    sourceDateEpoch: ctx.sourceDateEpoch,
    tools: await backend.keyInputs(spec),
  };
  return `${spec.distro}-${hashInputs(inputs).slice(0, 32)}`;
}

/**
 * A prepared tree is used as is, but its key must still change when it does (the packed tarball is
 * cached by it): a walk over names, types, modes, owners, sizes and mtimes.
 */
async function treeFingerprint(root: string): Promise<string> {
  const h = createHash('sha256');
  async function walk(rel: string): Promise<void> {
    const names = (await readdir(join(root, rel))).sort();
    // One directory's entries at once: a sequential walk of a 17k-entry Debian tree takes ~4 s.
    const stats = await Promise.all(names.map((n) => lstat(join(root, rel, n), { bigint: true })));
    for (const [i, n] of names.entries()) {
      const p = join(rel, n);
      const st = stats[i]!;
      h.update(`${p}\0${st.mode}\0${st.uid}\0${st.gid}\0${st.size}\0${st.mtimeNs}\0${st.rdev}\0${st.ino}\n`);
      if (st.isSymbolicLink()) h.update(await readlink(join(root, p)));
      else if (st.isDirectory()) await walk(p);
    }
  }
  await walk('');
  return h.digest('hex');
}

export async function bootstrapImage(spec: ImageSpec, ctx: ImageBuildContext): Promise<BootstrappedImage> {
  if (spec.rootfs) {
    const rootDir = resolve(spec.rootfs);
    if (!(await lstat(rootDir).catch(() => null))?.isDirectory()) {
      throw new StageError(STAGE, `spec.rootfs ${rootDir} is not a directory`);
    }
    const key = `rootfs-${hashInputs({ rootDir, tree: await treeFingerprint(rootDir) }).slice(0, 32)}`;
    ctx.log.info(`using the prepared tree ${rootDir} as is (no bootstrap)`);
    return { rootDir, cacheKey: key, fromCache: false };
  }

  const backend = backendFor(spec.distro);
  const problems = backend.problems?.(spec) ?? [];
  if (problems.length) throw new StageError(STAGE, problems.join('\n'));
  await checkBootstrapHost(backend);
  const cacheKey = await imageCacheKey(spec, ctx);
  const entry = await ctx.log.step(`bootstrap ${spec.name} (${spec.distro} ${spec.release})`, () =>
    cachedBuild({
      area: join(ctx.cacheDir, 'rootfs'),
      key: cacheKey,
      force: ctx.force,
      log: ctx.log,
      build: async (tmp) => {
        const scratch = join(tmp, 'scratch');
        await mkdir(scratch);
        const target = join(tmp, 'rootfs');
        await backend.bootstrap(spec, target, scratch, ctx);
        await removeTree(scratch);
        const stripped = await makeGeneric(target);
        await writeFile(
          join(tmp, 'meta.json'),
          JSON.stringify({ spec: { ...spec, rootfs: undefined }, cacheKey, stripped }, null, 2) + '\n',
        );
      },
    }),
  );
  ctx.log.info(entry.fromCache ? `bootstrap: cache hit ${cacheKey}` : `bootstrap: built ${cacheKey}`);
  return { rootDir: join(entry.dir, 'rootfs'), cacheKey, fromCache: entry.fromCache };
}
