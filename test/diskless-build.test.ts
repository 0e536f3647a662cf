/** The diskless root's squashfs: same tree, same bytes whatever the times on disk; file capabilities kept. */
import { mkdir, readFile, readdir, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { memoryLogger } from '../build/lib/log.ts';
import { run } from '../build/lib/run.ts';
import { packSquashfs, packSquashfsCached } from '../build/stages/pack-squashfs.ts';
import { FIXED_EPOCH, workspace } from './helpers/workspace.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function tree(root: string, mtime: number): Promise<void> {
  await mkdir(join(root, 'usr/bin'), { recursive: true });
  await writeFile(join(root, 'usr/bin/ping'), '#!/bin/sh\n');
  await symlink('usr/bin', join(root, 'bin'));
  await writeFile(join(root, 'etc-hostname'), 'golden\n');
  for (const f of ['usr/bin/ping', 'etc-hostname', 'usr/bin', 'usr', '.']) await utimes(join(root, f), mtime, mtime);
}

describe.runIf(process.getuid?.() === 0)('pack-squashfs', () => {
  it('is deterministic, named by its digest with a .sha256 beside it, and keeps file capabilities', async () => {
    const ws = await workspace('pc-sfs-');
    cleanups.push(ws.cleanup);
    const packs = [];
    for (const [i, mtime] of [[1, FIXED_EPOCH + 86_400], [2, FIXED_EPOCH - 86_400]] as const) {
      const root = join(ws.dir, `root${i}`);
      await tree(root, mtime);
      await run(['setcap', 'cap_net_raw+ep', join(root, 'usr/bin/ping')]);
      packs.push(await packSquashfs(root, { outDir: join(ws.dir, `out${i}`), name: 'golden', sourceDateEpoch: FIXED_EPOCH, log: memoryLogger() }));
    }
    const [a, b] = packs;
    expect(a!.sha256).toBe(b!.sha256);
    expect(a!.fileName).toBe(`golden-${a!.sha256.slice(0, 16)}.sfs`);
    expect(await readFile(`${a!.path}.sha256`, 'utf8')).toBe(`${a!.sha256}  ${a!.fileName}\n`);
    const dest = join(ws.dir, 'x');
    await run(['unsquashfs', '-quiet', '-no-progress', '-d', dest, a!.path]);
    expect((await run(['getcap', join(dest, 'usr/bin/ping')])).stdout).toMatch(/cap_net_raw[=+]ep/);
    expect((await run(['stat', '-c', '%Y', join(dest, 'etc-hostname')])).stdout.trim()).toBe(String(FIXED_EPOCH));
  });

  it('is packed once: an unchanged tree is copied from the cache, a changed key or --force packs again', async () => {
    const ws = await workspace('pc-sfs-cache-');
    cleanups.push(ws.cleanup);
    const rootDir = join(ws.dir, 'root');
    await tree(rootDir, FIXED_EPOCH);
    const cacheDir = join(ws.dir, 'cache');
    const pack = (out: string, o: { key?: string; force?: boolean } = {}) =>
      packSquashfsCached({ rootDir, cacheKey: o.key ?? 'tree-1', fromCache: false }, { outDir: join(ws.dir, out), cacheDir, force: !!o.force, name: 'golden', sourceDateEpoch: FIXED_EPOCH, log: memoryLogger() });
    const first = await pack('out1');
    expect(first.fromCache).toBe(false);
    // The tree changes on disk, its key does not: the cache answers, so the squashfs is the first one's.
    await writeFile(join(rootDir, 'etc-hostname'), 'changed\n');
    const second = await pack('out2');
    expect(second).toMatchObject({ fromCache: true, sha256: first.sha256, fileName: first.fileName, size: first.size });
    expect(await readFile(second.path)).toEqual(await readFile(first.path));
    expect(await readFile(`${second.path}.sha256`, 'utf8')).toBe(`${first.sha256}  ${first.fileName}\n`);
    expect((await readdir(join(ws.dir, 'out2'))).sort()).toEqual([first.fileName, `${first.fileName}.sha256`]);
    const rekeyed = await pack('out3', { key: 'tree-2' });
    expect(rekeyed.fromCache).toBe(false);
    expect(rekeyed.sha256).not.toBe(first.sha256);
    expect((await pack('out4', { force: true })).fromCache).toBe(false);
  });
});
