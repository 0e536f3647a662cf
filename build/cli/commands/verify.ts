import { UsageError } from '../../lib/errors.ts';
import { verifyTree } from '../../stages/checksum-tree.ts';
import { emit, parseFlags, type Command } from '../command.ts';

export const command: Command = async (argv) => {
  const { values, positionals } = parseFlags(argv, { json: { type: 'boolean' } }, true);
  if (positionals.length !== 1) throw new UsageError('verify takes one directory: portacluster verify DIR');
  const dir = positionals[0]!;
  const result = await verifyTree(dir);
  const text = result.ok
    ? `${dir}: ${result.checked} files verified`
    : `${dir}: ${result.problems.length} problem(s)\n` + result.problems.map((p) => `  ${p.path}: ${p.problem}`).join('\n');
  emit(!!values.json, { dir, ...result }, text);
  return result.ok ? 0 : 1;
};
