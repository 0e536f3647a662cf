/**
 * What `build --out DIR` may replace. publishDist swaps a whole directory in, so whatever was at DIR is
 * gone afterwards: this check runs before any stage and refuses anything a user would miss. Replaceable
 * without asking: nothing there, an empty directory, or a tree portacluster built (manifest.json marked
 * `portacluster: '1'`) whose node links are what this build writes anyway. A non-empty foreign directory
 * or a tree whose node links were switched since (a served tree: reimage, watch) needs --force-out. Never
 * replaced, even with --force-out: a file, a symlink (a deployed tree: replacing the link would serve a
 * tree without releases), a release inside `<dest>.releases/`, `/`, the current directory or one of its
 * ancestors, the repository, the cache dir or one that holds it.
 */
import { lstat, readdir, readFile, readlink, realpath } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../lib/errors.ts';
import type { PlanNode } from '../plan/plan.ts';
import { IPXE_DIR, isNodeLinkName, ipxeNodeFile, ipxePath, ipxeProfileFile, MANIFEST_FILE, PXELINUX_DIR, pxelinuxNodeFile, pxelinuxPath } from '../layout.ts';

export interface OutDirCheck {
  outDir: string;
  cacheDir: string;
  /** The nodes the build writes links for: a served tree whose links differ is someone's live state. */
  nodes: readonly Pick<PlanNode, 'name' | 'mac' | 'profile'>[];
  forceOut: boolean;
  cwd?: string;
}

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
/** Node links the build writes, by directory; the same names the lifecycle commands switch. */
const LINK_DIRS = [PXELINUX_DIR, IPXE_DIR];

/** Real path of the longest existing prefix, with the rest appended: comparable even before mkdir. */
async function canonical(path: string): Promise<string> {
  const abs = resolve(path);
  const real = await realpath(abs).catch(() => null);
  if (real) return real;
  const parent = dirname(abs);
  return parent === abs ? abs : join(await canonical(parent), basename(abs));
}

const within = (inner: string, outer: string) => inner === outer || inner.startsWith(outer.endsWith(sep) ? outer : outer + sep);

function expectedLinks(nodes: OutDirCheck['nodes']): Map<string, string> {
  const m = new Map<string, string>();
  for (const n of nodes) {
    m.set(pxelinuxPath(pxelinuxNodeFile(n.mac)), n.profile);
    m.set(ipxePath(ipxeNodeFile(n.mac)), ipxeProfileFile(n.profile));
  }
  return m;
}

/** Node links in an existing tree that a build would change or drop: `path -> now (build: wanted)`. */
async function changedLinks(dir: string, nodes: OutDirCheck['nodes']): Promise<string[]> {
  const want = expectedLinks(nodes);
  const out: string[] = [];
  for (const sub of LINK_DIRS) {
    const names = await readdir(join(dir, sub)).catch(() => [] as string[]);
    for (const name of names.filter(isNodeLinkName).sort()) {
      const path = `${sub}/${name}`;
      const now = await readlink(join(dir, path)).catch(() => null);
      if (now === null) continue;
      const wanted = want.get(path);
      if (now !== wanted) out.push(`${path} -> ${now} (the build writes ${wanted ?? 'no such link'})`);
    }
  }
  return out;
}

async function isPortaclusterTree(dir: string): Promise<boolean> {
  try {
    const m = JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8')) as { portacluster?: unknown };
    return m.portacluster === '1';
  } catch {
    return false;
  }
}

/** Throws a UsageError (exit 2) naming what is at --out and how to proceed; returns when it may be replaced. */
export async function checkOutDir(o: OutDirCheck): Promise<void> {
  const abs = resolve(o.outDir);
  const shown = o.outDir === abs ? abs : `${o.outDir} (${abs})`;
  const refuse = (what: string, forceable: boolean) => {
    const how = forceable ? 'pass --force-out to replace it anyway, or give --out a new path' : 'give --out a new path (e.g. --out dist)';
    return new UsageError(`--out ${shown}: ${what}; nothing was built or changed\n  hint: ${how}`);
  };
  const st = await lstat(abs).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw e;
  });
  if (st?.isSymbolicLink()) {
    throw refuse(`is a symlink to ${await readlink(abs)} (a deployed tree, or someone else's directory); a build replaces directories, never links\n  to publish a build there, build into dist/ and run \`portacluster deploy ${abs}\``, false);
  }
  if (st && !st.isDirectory()) throw refuse('is a file, not a directory: the build would replace it with a tree', false);
  const real = await canonical(abs);
  // Inside `<dest>.releases/`, however it is reached (directly, or through the served symlink).
  const releases = real.split(sep).findIndex((c, i, all) => c.endsWith('.releases') && i < all.length - 1);
  if (releases > 0) throw refuse(`is inside a release of a deployed tree (${real.split(sep).slice(0, releases + 1).join(sep)}): it is served through a symlink`, false);

  const cwd = await canonical(o.cwd ?? process.cwd());
  const cache = await canonical(o.cacheDir);
  if (real === sep) throw refuse('is the root directory', false);
  if (within(cwd, real)) throw refuse(real === cwd ? 'is the current directory' : `holds the current directory (${cwd})`, false);
  if (within(REPO, real)) throw refuse(`is or holds portacluster itself (${REPO})`, false);
  if (within(cache, real) || within(real, cache)) throw refuse(`${within(real, cache) ? 'is inside' : 'is or holds'} the build cache (${cache}); the build reads the cache while it writes --out`, false);
  if (!st) return;

  const entries = await readdir(abs);
  if (!entries.length) return;
  if (!(await isPortaclusterTree(abs))) {
    const sample = entries.sort().slice(0, 5).join(', ') + (entries.length > 5 ? `, … (${entries.length} entries)` : '');
    if (!o.forceOut) throw refuse(`is a directory portacluster did not build (no ${MANIFEST_FILE} marked portacluster: "1"); it holds ${sample}, which the build would delete`, true);
    return;
  }
  const changed = await changedLinks(abs, o.nodes);
  if (changed.length && !o.forceOut) {
    const list = changed.slice(0, 5).map((l) => `\n    ${l}`).join('') + (changed.length > 5 ? `\n    … and ${changed.length - 5} more` : '');
    throw refuse(`is a served tree whose node links were switched since it was built (reimage, rescue, watch); the build would reset them:${list}`, true);
  }
}
