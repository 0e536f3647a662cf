import { existsSync } from 'node:fs';
import { UsageError } from '../lib/errors.ts';

const DEFAULTS = ['portacluster.config.ts', 'portacluster.config.js', 'portacluster.config.json'];

/** --config, else the first portacluster.config.{ts,js,json} in the current directory. */
export function configPath(flag: string | undefined): string {
  if (flag) return flag;
  const found = DEFAULTS.find((f) => existsSync(f));
  if (!found) throw new UsageError(`no spec given and none of ${DEFAULTS.join(', ')} here; use --config FILE`);
  return found;
}
