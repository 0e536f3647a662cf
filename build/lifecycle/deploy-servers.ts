/**
 * deploy with boot servers (issue 17): node0's tree goes to node0, and each boot server's copy — its own
 * tree (etc/servers/<name>/, layout.ts) plus what it shares with node0's (layout.ts BOOT_SERVER_SHARED) —
 * goes to `<server's ssh>:<admin.servedRoot>`, each as a release beside the live one, as deploy.ts does.
 *
 * The rule for partial failure, and why:
 * 1. Every destination is staged and verified (rsync, then `sha256sum -c` there) first, a few at once.
 *    If any fails, every staged release is removed and nothing is switched anywhere: the error names each
 *    destination that failed. Most failures (a server down, a full disk, a bad copy) happen here.
 * 2. Then node0 is switched first, the servers after it. node0 first because a server's tree names images
 *    by content and fetches them from node0 through its cache: a server switched before node0 could hand
 *    its nodes an image node0 does not serve yet, whereas node0's new release carries the previous one's
 *    images over (deploy.ts 3b), so a server left on its previous release keeps installing correctly.
 * 3. A server whose switch fails after that (its ssh lost between the two phases) stays on its previous
 *    release, still working by 2; it is named in the result and deploy exits 1, and the next deploy
 *    brings it level. node0 is not switched back: the other servers' nodes would lose their new release.
 */
import { existsSync } from 'node:fs';
import { link, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { BOOT_SERVER_SHARED, MANIFEST_FILE, SERVED_SPEC, bootServerDir } from '../layout.ts';
import { StageError } from '../lib/errors.ts';
import { planCluster } from '../plan/plan.ts';
import { loadSpec } from '../spec/load.ts';
import { checksumTree } from '../stages/checksum-tree.ts';

/** A boot server as deploy sees it: where its copy goes. */
export interface DeployedServer {
  name: string;
  /** `<ssh target>:<admin.servedRoot>`. */
  dest: string;
}

/** One boot server's outcome, in the deploy result. */
export interface ServerDeploy {
  name: string;
  dest: string;
  /** The release now live there; null when it was not switched (error says why) or in a dry run. */
  release: string | null;
  error: string | null;
  checked?: number;
  keptLinks?: string[];
}

/** The boot servers of the tree's own spec (etc/portacluster.json); none when the tree carries no spec. */
export async function deployedServers(from: string): Promise<DeployedServer[]> {
  const file = join(from, SERVED_SPEC);
  if (!existsSync(file)) return [];
  const plan = planCluster((await loadSpec(file)).spec);
  return plan.bootServers.map((b) => ({ name: b.name, dest: `${b.ssh}:${plan.admin.servedRoot}` }));
}

/** Copies `src` into `dst`: files as hard links (a copy across filesystems), links as links; skips `except` (relative to `top`). */
async function linkTree(src: string, dst: string, except: ReadonlySet<string>, rel = ''): Promise<void> {
  await mkdir(dst, { recursive: true });
  for (const e of await readdir(src, { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (except.has(r)) continue;
    const from = join(src, e.name);
    const to = join(dst, e.name);
    if (e.isSymbolicLink()) await symlink(await readlink(from), to);
    else if (e.isDirectory()) await linkTree(from, to, except, r);
    else if (e.isFile()) await link(from, to).catch(() => copyFile(from, to));
  }
}

/**
 * A boot server's served tree, assembled from node0's built tree into `into`: the shared part, then its own
 * tree over it, then SHA256SUMS and a manifest of its own, so deploy verifies it on the server as on node0.
 */
export async function assembleServerTree(from: string, name: string, into: string): Promise<void> {
  for (const { dir, except } of BOOT_SERVER_SHARED) {
    if (existsSync(join(from, dir))) await linkTree(join(from, dir), join(into, dir), new Set(except), dir);
  }
  const own = join(from, bootServerDir(name));
  if (!(await lstat(own).catch(() => null))?.isDirectory()) throw new StageError('deploy', `${from} has no ${bootServerDir(name)}: the tree was built without boot server ${name}\n  hint: rebuild with the spec that names it`);
  await linkTree(own, into, new Set());
  const m = JSON.parse(await readFile(join(from, MANIFEST_FILE), 'utf8')) as { specHash: string; sourceDateEpoch: number };
  await checksumTree(into, { portacluster: '1', specHash: m.specHash, sourceDateEpoch: m.sourceDateEpoch, tools: {}, artifacts: { bootServer: name } });
}

interface Dest {
  dest: string;
  from: string;
  activate: boolean;
}

export interface FanOut<S, R> {
  o: { activate?: boolean; parallel?: number; log?: (line: string) => void };
  from: string;
  servers: DeployedServer[];
  node0: string;
  stage: (d: Dest, verify: boolean) => Promise<S>;
  publish: (s: S, activate: boolean) => Promise<R>;
  discard: (s: S) => Promise<void>;
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e)).replace(/^deploy: /, '');

/** node0 and every boot server, by the rule above. Returns node0's result with each server's beside it. */
export async function fanOut<S, R extends { release: string | null; checked: number; keptLinks: string[] }>(f: FanOut<S, R>): Promise<R & { servers: ServerDeploy[] }> {
  const log = f.o.log ?? (() => {});
  const limit = pLimit(Math.max(1, f.o.parallel ?? 4));
  const work = await mkdtemp(join(tmpdir(), 'pc-deploy-servers-'));
  try {
    const dests: (Dest & { name: string })[] = [{ name: 'node0', dest: f.node0, from: f.from, activate: !!f.o.activate }];
    for (const b of f.servers) {
      const into = join(work, b.name);
      await assembleServerTree(f.from, b.name, into);
      dests.push({ name: b.name, dest: b.dest, from: into, activate: false });
    }
    log(`staging the release on node0 and ${f.servers.length} boot server${f.servers.length === 1 ? '' : 's'} (${Math.max(1, f.o.parallel ?? 4)} at once)`);
    const staged = await Promise.allSettled(dests.map((d) => limit(() => f.stage(d, true))));
    const failed = staged.flatMap((r, i) => (r.status === 'rejected' ? [`  ${dests[i]!.name} (${dests[i]!.dest}): ${message(r.reason).replace(/\n/g, '\n    ')}`] : []));
    const ok = staged.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    if (failed.length) {
      await Promise.all(ok.map((s) => f.discard(s)));
      throw new StageError('deploy', `staging failed on ${failed.length} of ${dests.length} destinations; nothing was switched, every one still serves its previous release:\n${failed.join('\n')}\n  hint: fix or take out the named destinations and deploy again`);
    }
    const [node0, ...servers] = ok as [S, ...S[]];
    let result: R;
    try {
      result = await f.publish(node0, !!f.o.activate);
    } catch (e) {
      await Promise.all(servers.map((s) => f.discard(s)));
      throw e;
    }
    const outcomes = await Promise.all(
      servers.map((s, i) =>
        limit(async (): Promise<ServerDeploy> => {
          const b = f.servers[i]!;
          try {
            const r = await f.publish(s, false);
            return { name: b.name, dest: b.dest, release: r.release, error: null, checked: r.checked, keptLinks: r.keptLinks };
          } catch (e) {
            return { name: b.name, dest: b.dest, release: null, error: message(e) };
          }
        }),
      ),
    );
    return { ...result, servers: outcomes };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
