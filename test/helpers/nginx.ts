import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Adapts a generated nginx.conf to run unprivileged-style in a temp prefix: the listen address, the
 * served root and the pid/log paths are rewritten; everything else is tested as generated.
 */
export async function adaptNginxConf(conf: string, o: { prefix: string; listen: string; root: string }): Promise<string> {
  await mkdir(join(o.prefix, 'logs'), { recursive: true });
  const adapted = conf
    .replace(/^(\s*)listen [^;]+;/m, `$1listen ${o.listen} default_server;`)
    .replace(/^(\s*)root [^;]+;/m, `$1root ${o.root};`)
    .replace(/^pid [^;]+;/m, `pid ${join(o.prefix, 'nginx.pid')};`)
    .replace(/^error_log [^;]+;/m, `error_log ${join(o.prefix, 'logs/error.log')};`)
    .replace(/access_log \S+ /, `access_log ${join(o.prefix, 'logs/access.log')} `);
  const file = join(o.prefix, 'nginx.conf');
  await writeFile(file, adapted);
  return file;
}
