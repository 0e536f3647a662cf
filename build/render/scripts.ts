/**
 * The edge between the hand-written bash and the generated autorun scripts. Every profile's script is
 * "common + own" by one rule: common/lib/*.sh (what installer, rescue and diskless share: logging,
 * reports, the failure path and cleanup hooks, node identification, verified downloads, per-node
 * configuration), then <profile>/lib/*.sh, then <profile>/main.sh, assembled with the plan's data
 * prologue. Within a directory libraries are inlined in byte order of their names, so a numeric prefix
 * (10-report.sh, 20-node.sh…) orders them; common comes first, so a profile's libraries may use it at load.
 */
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { StageError } from '../lib/errors.ts';
import type { Plan } from '../plan/plan.ts';
import { discoverVars, disklessVars, installerVars, renderAutorun, rescueVars, type FsImageRef, type ImageRef, type ShellSource } from './autorun.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

export interface ScriptSources {
  libraries: ShellSource[];
  main: ShellSource;
}

/** The directory of the libraries every profile's script starts with. */
export const COMMON_LIBRARIES = 'common';

async function libraries(root: string, kind: string): Promise<ShellSource[]> {
  const names = (await readdir(join(root, kind, 'lib'))).filter((n) => n.endsWith('.sh')).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  // Not the plan's fault: the hand-written libraries are part of the installation.
  if (names.length === 0) throw new StageError('render', `no ${kind}/lib/*.sh in ${root}: this portacluster installation is incomplete`);
  return Promise.all(names.map(async (n) => ({ name: `${kind}/lib/${n}`, text: await readFile(join(root, kind, 'lib', n), 'utf8') })));
}

/** common/lib/*.sh, then <kind>/lib/*.sh, then <kind>/main.sh. */
export async function readScriptSources(kind: 'installer' | 'rescue' | 'diskless' | 'discover', root: string = REPO): Promise<ScriptSources> {
  const libs = [...(await libraries(root, COMMON_LIBRARIES)), ...(await libraries(root, kind))];
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

export async function renderDiscoverScript(plan: Plan): Promise<string> {
  const src = await readScriptSources('discover');
  return renderAutorun({ title: 'discover', specHash: plan.specHash, vars: discoverVars(plan), ...src });
}
