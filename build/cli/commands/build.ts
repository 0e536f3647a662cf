import { join, resolve } from 'node:path';
import { createLogger } from '../../lib/log.ts';
import { UsageError } from '../../lib/errors.ts';
import { loadSpec } from '../../spec/load.ts';
import { planCluster } from '../../plan/plan.ts';
import { buildDist, DEFAULT_SOURCE_DATE_EPOCH } from '../../pipeline.ts';
import { defineCommand, emit } from '../command.ts';
import { configPath } from '../config-path.ts';
import { onInterrupt } from '../../lib/cleanup.ts';
import { CONFIG, JSON_OUT } from '../options.ts';

export const DEFAULT_CACHE = join('.cache', 'portacluster');

export const command = defineCommand(
  {
    name: 'build',
    summary: [
      'Build the served tree (dist/) from the spec: golden image, installer environment, boot files, configs,',
      'SHA256SUMS. The tree is built beside --out and renamed into place; --out is only replaced when it is',
      'absent, empty, or a tree portacluster built whose node links are unchanged (else --force-out).',
    ].join('\n'),
    options: {
      config: CONFIG,
      out: { type: 'string', short: 'o', arg: 'DIR', default: 'dist', description: 'where the tree goes' },
      'force-out': { type: 'boolean', description: 'replace --out even if it is a foreign non-empty directory or a served tree with switched node links' },
      cache: { type: 'string', arg: 'DIR', description: 'bootstrapped roots, packed images, downloads (else $PORTACLUSTER_CACHE; default: .cache/portacluster)' },
      force: { type: 'boolean', description: 'rebuild every cached artifact (image root, installer environment, packs)' },
      quiet: { type: 'boolean', short: 'q', description: 'print only the result line (and warnings)' },
      'no-typecheck': { type: 'boolean', description: 'skip the TypeScript type-check of a .ts spec (the schema and rules still run)' },
      json: JSON_OUT,
    },
    examples: ['portacluster build --config lab.config.ts --out dist', 'PORTACLUSTER_CACHE=/var/cache/portacluster portacluster build -q'],
  },
  async (values) => {
    const epochText = process.env.SOURCE_DATE_EPOCH;
    const sourceDateEpoch = epochText === undefined || epochText === '' ? DEFAULT_SOURCE_DATE_EPOCH : Number(epochText);
    if (!Number.isSafeInteger(sourceDateEpoch) || sourceDateEpoch < 0) throw new UsageError(`SOURCE_DATE_EPOCH is not a number of seconds: ${epochText}`);
    // The spec is validated before anything is written: a bad spec exits 2 and leaves dist/ alone.
    const { spec, path, raw } = await loadSpec(configPath(values.config), { typecheck: !values['no-typecheck'] });
    const plan = planCluster(spec);
    const log = createLogger({ quiet: !!values.quiet || !!values.json });
    const cacheDir = resolve(values.cache || process.env.PORTACLUSTER_CACHE || DEFAULT_CACHE);
    const started = Date.now();
    const outDir = values.out!;
    const uninstall = onInterrupt(({ signal, activity, removed }) => {
      process.stderr.write(
        `\nportacluster: build interrupted by ${signal} during ${activity}; ${outDir} was left as it was` +
          (removed.length ? `\n  removed ${removed.length} temporary director${removed.length === 1 ? 'y' : 'ies'}: ${removed.join(', ')}` : '') +
          '\n  the cache keeps every finished step: the next build resumes from there\n',
      );
    });
    const result = await buildDist(plan, { outDir, cacheDir, force: !!values.force, forceOut: !!values['force-out'], sourceDateEpoch, log, spec: raw }).finally(uninstall);
    const seconds = (Date.now() - started) / 1000;
    const total = result.manifest.files.reduce((s, f) => s + f.size, 0);
    emit(
      !!values.json,
      { ok: true, spec: path, outDir: result.outDir, seconds, specHash: plan.specHash, artifacts: result.manifest.artifacts, files: result.manifest.files.length },
      `built ${result.outDir}: ${result.manifest.files.length} files, ${(total / 1048576).toFixed(1)} MiB in ${seconds.toFixed(1)} s (spec ${plan.specHash.slice(0, 16)})`,
    );
    return 0;
  },
);
