import { SpecError } from '../../lib/errors.ts';
import { loadSpec } from '../../spec/load.ts';
import { planCluster } from '../../plan/plan.ts';
import { defineCommand, emit } from '../command.ts';
import { configPath } from '../config-path.ts';
import { CONFIG, JSON_OUT } from '../options.ts';

export const command = defineCommand(
  {
    name: 'validate',
    summary: 'Check a spec and print every problem at once, each with its path and a hint; writes nothing.',
    options: { config: CONFIG, 'no-typecheck': { type: 'boolean', description: 'skip the TypeScript type-check of a .ts spec (the schema and rules still run)' }, json: JSON_OUT },
    examples: ['portacluster validate --config lab.config.ts'],
  },
  async (values) => {
    const file = configPath(values.config);
    try {
      const { spec } = await loadSpec(file, { typecheck: !values['no-typecheck'] });
      const plan = planCluster(spec);
      emit(!!values.json, { ok: true, file, specHash: plan.specHash, nodes: plan.nodes.length }, `${file}: ok (${plan.nodes.length} nodes, spec ${plan.specHash.slice(0, 16)})`);
      return 0;
    } catch (e) {
      if (e instanceof SpecError && values.json) {
        emit(true, { ok: false, file, issues: e.issues }, '');
        return 2;
      }
      throw e;
    }
  },
);
