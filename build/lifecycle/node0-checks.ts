/**
 * The real tools on the configs node0's services run: the tree's own etc/dnsmasq.conf and etc/nginx.conf
 * (what the systemd units start), and the shared-mode snippet. One list of checks, run here by
 * `node0 install` and as a sh script on node0 by `deploy --activate` (locally or over ssh), so both
 * refuse the same configs. nginx -t binds the listen address: it passes only where the admin IP is.
 */
import { DNSMASQ_CONF, NGINX_CONF } from '../layout.ts';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StageError } from '../lib/errors.ts';
import { run } from '../lib/run.ts';
import { shq } from '../render/shell.ts';
import type { Node0Mode } from '../render/systemd.ts';

export interface ConfigCheck {
  name: string;
  file: string;
  argv: string[];
}

export function treeConfigChecks(tree: string, mode: Node0Mode = 'dedicated'): ConfigCheck[] {
  const checks: ConfigCheck[] = [{ name: 'dnsmasq', file: join(tree, DNSMASQ_CONF), argv: ['dnsmasq', '--test', `--conf-file=${join(tree, DNSMASQ_CONF)}`] }];
  // A shared node0 runs the distro's nginx config with our snippet; the tree's whole config is not used.
  if (mode === 'dedicated') checks.push({ name: 'nginx', file: join(tree, NGINX_CONF), argv: ['nginx', '-t', '-q', '-c', join(tree, NGINX_CONF)] });
  return checks;
}

/** The checks as one sh script: exits 3 and prints `failed\t<name>\t<file>` then the tool's words on stderr. */
export function checkScript(checks: ConfigCheck[]): string {
  // A passing tool's chatter ("syntax check OK") is dropped; a refusing one's words go to stderr.
  return ['set -u', ...checks.map((c) => `out=$(${c.argv.map(shq).join(' ')} 2>&1) || { printf 'failed\\t%s\\t%s\\n' ${shq(c.name)} ${shq(c.file)}; printf '%s\\n' "$out" >&2; exit 3; }`)].join('\n');
}

function refusal(name: string, file: string, words: string): StageError {
  return new StageError('node0', `${name} refuses ${file}:\n${words.trim().replace(/^/gm, '    ')}`);
}

export async function checkTreeConfigs(tree: string, mode: Node0Mode): Promise<void> {
  for (const c of treeConfigChecks(tree, mode)) {
    const r = await run(c.argv, { nothrow: true });
    if (r.exitCode !== 0) throw refusal(c.name, c.file, r.stderr || r.stdout);
  }
}

/** The shared-mode snippet inside a minimal http {} of its own, so it is checked even without a distro config. */
export async function checkNginxSnippet(snippet: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'pc-nginx-snippet-'));
  try {
    await writeFile(join(dir, 'site.conf'), snippet);
    await writeFile(join(dir, 'nginx.conf'), `pid ${join(dir, 'nginx.pid')};\nerror_log stderr;\nevents {}\nhttp {\n    include ${join(dir, 'site.conf')};\n}\n`);
    const r = await run(['nginx', '-t', '-q', '-p', dir, '-c', join(dir, 'nginx.conf')], { nothrow: true });
    if (r.exitCode !== 0) throw refusal('nginx', 'the portacluster server block', r.stderr || r.stdout);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
