/** One line saying which cache a build uses: a wrong --cache costs minutes, so it must be visible. */
import { readdir } from 'node:fs/promises';

/** Cache areas whose presence means the slow steps (bootstrap, installer environment) can be skipped. */
const AREAS = ['images', 'installer-env', 'downloads'];

export async function describeCache(dir: string): Promise<string> {
  const top = await readdir(dir).catch(() => null);
  if (top === null) return `cache: ${dir} (new: the first build bootstraps everything, several minutes)`;
  const filled: string[] = [];
  for (const a of AREAS.filter((x) => top.includes(x))) {
    const inside = await readdir(`${dir}/${a}`).catch(() => [] as string[]);
    if (inside.some((n) => !n.startsWith('.'))) filled.push(a);
  }
  if (!filled.length) return `cache: ${dir} (empty: the first build bootstraps everything, several minutes)`;
  return `cache: ${dir} (has ${filled.join(', ')})`;
}
