import { SpecError } from '../../lib/errors.ts';
import { loadSpec } from '../../spec/load.ts';
import { planCluster } from '../../plan/plan.ts';
import { secretFiles } from '../../spec/power-rules.ts';
import { secretFileIssues } from '../../power/secrets.ts';
import { defineCommand, emit } from '../command.ts';
import { configPath } from '../config-path.ts';
import { CONFIG, JSON_OUT } from '../options.ts';

export const command = defineCommand(
  {
    name: 'validate',
    summary: [
      'Check a spec and print every problem at once, each with its path and a hint; writes nothing.',
      'Then, on this host, every secret file the power specs name must exist and be readable by its owner only.',
    ].join('\n'),
    options: {
      config: CONFIG,
      'no-typecheck': { type: 'boolean', description: 'skip the TypeScript type-check of a .ts spec (the schema and rules still run)' },
      'no-secrets': { type: 'boolean', description: 'skip checking the secret files the power specs name (validating away from node0)' },
      json: JSON_OUT,
    },
    examples: ['portacluster validate --config lab.config.ts'],
  },
  async (values) => {
    const file = configPath(values.config);
    try {
      const { spec } = await loadSpec(file, { typecheck: !values['no-typecheck'] });
      const plan = planCluster(spec);
      // A host check, like the type-check: the files live on node0, where power commands run.
      const secrets = values['no-secrets'] ? [] : await secretFileIssues(secretFiles(spec));
      if (secrets.length) {
        secrets[secrets.length - 1]!.hint += '\n    (on a host other than node0, --no-secrets skips this check)';
        throw new SpecError(secrets, file);
      }
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
