/**
 * The edge between the hand-written bash and the generated autorun scripts: reads installer/lib/*.sh +
 * installer/main.sh (and rescue's) from the repository and assembles them with the plan's data prologue.
 * Libraries are inlined in sorted file-name order, so a numeric prefix (10-log.sh, 20-node.sh…) orders them.
 */
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { Plan } from '../plan/plan.ts';
import { disklessVars, installerVars, renderAutorun, rescueVars, type FsImageRef, type ImageRef, type ShellSource } from './autorun.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

export interface ScriptSources {
  libraries: ShellSource[];
  main: ShellSource;
}

/** The installer's reporting and node identification, which rescue shares. */
export const SHARED_LIBRARIES = ['10-report.sh', '20-node.sh'] as const;
/** Diskless shares those and the per-node configuration (identity, network, users, ssh, console). */
export const DISKLESS_SHARED_LIBRARIES = [...SHARED_LIBRARIES, '15-fetch.sh', '50-configure.sh'] as const;

async function libraries(root: string, kind: string): Promise<ShellSource[]> {
  const names = (await readdir(join(root, kind, 'lib'))).filter((n) => n.endsWith('.sh')).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (names.length === 0) throw new Error(`no ${kind}/lib/*.sh in ${root}`);
  return Promise.all(names.map(async (n) => ({ name: `${kind}/lib/${n}`, text: await readFile(join(root, kind, 'lib', n), 'utf8') })));
}

/** installer/: lib/*.sh in byte order of their names, then main.sh; rescue/: the shared installer libraries first. */
export async function readScriptSources(kind: 'installer' | 'rescue' | 'diskless', root: string = REPO): Promise<ScriptSources> {
  let libs = await libraries(root, kind);
  if (kind === 'rescue' || kind === 'diskless') {
    const names: readonly string[] = kind === 'rescue' ? SHARED_LIBRARIES : DISKLESS_SHARED_LIBRARIES;
    const shared = (await libraries(root, 'installer')).filter((l) => names.some((n) => l.name.endsWith(`/${n}`)));
    libs = [...shared, ...libs];
  }
  const main = { name: `${kind}/main.sh`, text: await readFile(join(root, kind, 'main.sh'), 'utf8') };
  return { libraries: libs, main };
}

export async function renderInstallerScript(plan: Plan, image: ImageRef, fsImage?: FsImageRef): Promise<string> {
  const src = await readScriptSources('installer');
  return renderAutorun({ title: 'installer', specHash: plan.specHash, vars: installerVars(plan, image, fsImage), ...src });
}

export async function renderRescueScript(plan: Plan): Promise<string> {
  const src = await readScriptSources('rescue');
  return renderAutorun({ title: 'rescue', specHash: plan.specHash, vars: rescueVars(plan), ...src });
}

export async function renderDisklessScript(plan: Plan, root: ImageRef): Promise<string> {
  const src = await readScriptSources('diskless');
  return renderAutorun({ title: 'diskless', specHash: plan.specHash, vars: disklessVars(plan, root), ...src });
}
