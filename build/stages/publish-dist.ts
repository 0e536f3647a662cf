/**
 * dist/ is built in a sibling staging dir and renamed into place, so a failed or interrupted build never
 * touches the previous tree. The swap is two renames (old aside, new in); a crash between them is repaired
 * by the next build, which finds the old tree aside and no dist/.
 */
import { lstat, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { registerTemp } from '../lib/cleanup.ts';
import { pidAlive } from '../lib/process.ts';

async function present(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

function siblings(outDir: string) {
  const dir = dirname(outDir);
  const name = basename(outDir);
  return { dir, staging: (id: string) => join(dir, `.${name}.staging-${id}`), aside: (id: string) => join(dir, `.${name}.old-${id}`), name };
}

/** Removes stale staging dirs of dead builds and puts back a tree a crash left aside. */
export async function recoverDist(outDir: string): Promise<void> {
  const s = siblings(outDir);
  await mkdir(s.dir, { recursive: true });
  const entries = await readdir(s.dir);
  const asides = entries.filter((e) => e.startsWith(`.${s.name}.old-`));
  if (!(await present(outDir)) && asides.length) await rename(join(s.dir, asides.sort().at(-1)!), outDir);
  for (const e of entries) {
    if (!e.startsWith(`.${s.name}.staging-`) && !e.startsWith(`.${s.name}.old-`)) continue;
    const pid = Number(e.split('-').at(-1));
    if (Number.isInteger(pid) && pid !== process.pid && pidAlive(pid)) continue;
    await rm(join(s.dir, e), { recursive: true, force: true });
  }
}


const unregister = new Map<string, () => void>();

export async function createStaging(outDir: string): Promise<string> {
  await recoverDist(outDir);
  const staging = siblings(outDir).staging(String(process.pid));
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true, mode: 0o755 });
  unregister.set(staging, registerTemp(staging));
  return staging;
}

export async function publishDist(staging: string, outDir: string): Promise<void> {
  const aside = siblings(outDir).aside(String(process.pid));
  const had = await present(outDir);
  if (had) await rename(outDir, aside);
  await rename(staging, outDir);
  unregister.get(staging)?.();
  if (had) await rm(aside, { recursive: true, force: true });
}

export async function discardStaging(staging: string): Promise<void> {
  await rm(staging, { recursive: true, force: true });
  unregister.get(staging)?.();
}
