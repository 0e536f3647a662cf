/** The lifecycle commands' common start: find the spec (config-path.ts), load it, plan it. */
import { planCluster, type Plan } from '../plan/plan.ts';
import { loadSpec } from '../spec/load.ts';
import { configPath } from './config-path.ts';

export async function loadPlan(config: string | undefined, root?: string): Promise<Plan> {
  return planCluster((await loadSpec(configPath(config, { root }))).spec);
}
