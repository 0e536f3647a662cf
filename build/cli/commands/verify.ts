import { UsageError } from '../../lib/errors.ts';
import { verifyTree } from '../../stages/checksum-tree.ts';
import { defineCommand, emit } from '../command.ts';
import { JSON_OUT } from '../options.ts';

export const command = defineCommand(
  {
    name: 'verify',
    positionals: 'DIR',
    summary: 'Re-check a built or served tree against its SHA256SUMS and manifest.json: changed, missing and extra files.',
    options: { json: JSON_OUT },
    examples: ['portacluster verify /srv/public'],
  },
  async (values, positionals) => {
    if (positionals.length !== 1) throw new UsageError('verify takes one directory: portacluster verify DIR\n  see: portacluster verify --help');
    const dir = positionals[0]!;
    const result = await verifyTree(dir);
    const text = result.ok
      ? `${dir}: ${result.checked} files verified`
      : `${dir}: ${result.problems.length} problem(s)\n` + result.problems.map((p) => `  ${p.path}: ${p.problem}`).join('\n');
    emit(!!values.json, { dir, ...result }, text);
    return result.ok ? 0 : 1;
  },
);
