import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../lib/errors.ts';
import { DEFAULT_SERVED_ROOT, SERVED_SPEC } from '../layout.ts';

const DEFAULTS = ['portacluster.config.ts', 'portacluster.config.js', 'portacluster.config.json'];
const SERVED_ROOT = DEFAULT_SERVED_ROOT;

/**
 * --config; else $PORTACLUSTER_CONFIG; else portacluster.config.{ts,js,json} in the current directory;
 * else the spec the build shipped in the served tree (--root DIR, then /srv/public): on node0 the
 * lifecycle commands need no flags.
 */
export function configPath(flag: string | undefined, o: { root?: string | undefined } = {}): string {
  if (flag) return flag;
  const env = process.env.PORTACLUSTER_CONFIG;
  if (env) return env;
  const candidates = [...DEFAULTS, ...[o.root, SERVED_ROOT].filter((r): r is string => !!r).map((r) => join(r, SERVED_SPEC))];
  const found = candidates.find((f) => existsSync(f));
  if (!found) throw new UsageError(`no spec given and none of ${candidates.join(', ')} exists; use --config FILE`);
  return found;
}
