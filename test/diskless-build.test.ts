/** The diskless root's squashfs: same tree, same bytes whatever the times on disk; file capabilities kept. */
import { mkdir, readFile, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { memoryLogger } from '../build/lib/log.ts';
import { run } from '../build/lib/run.ts';
import { packSquashfs } from '../build/stages/pack-squashfs.ts';
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
});
