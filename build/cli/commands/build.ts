import { join, resolve } from 'node:path';
import { createLogger } from '../../lib/log.ts';
import { UsageError } from '../../lib/errors.ts';
import { loadSpec } from '../../spec/load.ts';
import { planCluster } from '../../plan/plan.ts';
import { buildDist, DEFAULT_SOURCE_DATE_EPOCH } from '../../pipeline.ts';
import { emit, parseFlags, type Command } from '../command.ts';
import { configPath } from '../config-path.ts';

export const command: Command = async (argv) => {
  const { values } = parseFlags(argv, {
    config: { type: 'string', short: 'c' },
    out: { type: 'string', short: 'o', default: 'dist' },
    cache: { type: 'string' },
    force: { type: 'boolean' },
    json: { type: 'boolean' },
    quiet: { type: 'boolean', short: 'q' },
    'no-typecheck': { type: 'boolean' },
  });
  const epochText = process.env.SOURCE_DATE_EPOCH;
  const sourceDateEpoch = epochText === undefined || epochText === '' ? DEFAULT_SOURCE_DATE_EPOCH : Number(epochText);
  if (!Number.isSafeInteger(sourceDateEpoch) || sourceDateEpoch < 0) throw new UsageError(`SOURCE_DATE_EPOCH is not a number of seconds: ${epochText}`);
  // The spec is validated before anything is written: a bad spec exits 2 and leaves dist/ alone.
  const { spec, path, raw } = await loadSpec(configPath(values.config), { typecheck: !values['no-typecheck'] });
  const plan = planCluster(spec);
  const log = createLogger({ quiet: !!values.quiet || !!values.json });
  const started = Date.now();
  const result = await buildDist(plan, {
    outDir: values.out!,
    cacheDir: resolve(values.cache ?? process.env.PORTACLUSTER_CACHE ?? join('.cache', 'portacluster')),
    force: !!values.force,
    sourceDateEpoch,
    log,
    spec: raw,
  });
  const seconds = (Date.now() - started) / 1000;
  const total = result.manifest.files.reduce((s, f) => s + f.size, 0);
  emit(
    !!values.json,
    { ok: true, spec: path, outDir: result.outDir, seconds, specHash: plan.specHash, artifacts: result.manifest.artifacts, files: result.manifest.files.length },
    `built ${result.outDir}: ${result.manifest.files.length} files, ${(total / 1048576).toFixed(1)} MiB in ${seconds.toFixed(1)} s (spec ${plan.specHash.slice(0, 16)})`,
  );
  return 0;
};
