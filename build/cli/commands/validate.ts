import { SpecError } from '../../lib/errors.ts';
import { loadSpec } from '../../spec/load.ts';
import { planCluster } from '../../plan/plan.ts';
import { emit, parseFlags, type Command } from '../command.ts';
import { configPath } from '../config-path.ts';

export const command: Command = async (argv) => {
  const { values } = parseFlags(argv, { config: { type: 'string', short: 'c' }, json: { type: 'boolean' }, 'no-typecheck': { type: 'boolean' } });
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
};
