/**
 * deploy --activate: the services follow the release that deploy just published.
 *
 *   before the switch  if the new release's etc/ differs from the live one, the real tools check it: the
 *                      tree's own etc/dnsmasq.conf and etc/nginx.conf (what node0's systemd units run),
 *                      and, when a `portacluster serve` runs here for that root, serve's runtime configs
 *                      rendered from the new spec exactly as serve renders them. A refusal removes the
 *                      incoming release: nothing was switched.
 *   after the switch   (a) node0's systemd units (node0 install) → systemctl reload-or-restart;
 *                      (b) else a running serve → SIGHUP, then its reload.json says how the reload went;
 *                      (c) else say that nothing runs and how to start it.
 *   on failure         the symlink goes back to the previous release, the services are reloaded onto it.
 *
 * Nodes mid-install never see a half-switched node0: every path they fetch (over TFTP or HTTP) is resolved
 * through <dest>, which is one symlink, and the switch is a rename(2) of a new symlink over it, atomic
 * on one filesystem: each open() lands wholly in the old release or wholly in the new one. The services
 * reload after the switch, and until then they serve the new tree with the old (compatible, checked)
 * configs; images the old release's installers still fetch were carried into the new one by deploy.
 */
import { DNSMASQ_CONF, SERVED_SPEC } from '../layout.ts';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { StageError } from '../lib/errors.ts';
import { planCluster } from '../plan/plan.ts';
import { shq } from '../render/shell.ts';
import { DNSMASQ_UNIT, NGINX_UNIT, UNIT_DIR, WATCH_UNIT } from '../render/systemd.ts';
import { loadSpec } from '../spec/load.ts';
import { MANIFEST } from './node0.ts';
import { checkScript, treeConfigChecks } from './node0-checks.ts';
import { prepareConfigs, RELOAD_RESULT, SERVE_INFO, SERVE_PID, type ServeInfo } from './serve.ts';
import { runScript, type Target } from './target.ts';

/**
 * The new release's etc/ against the live one's: the same, changed, or changed with dnsmasq's directives
 * the same (its header comment names the spec's hash). dnsmasq rereads only its hosts files on SIGHUP, so
 * a change means a restart, and a restart drops the TFTP transfers in flight: pxelinux does not retry a
 * broken one, and a node booting during the deploy would wait for its deadline. So it restarts only then.
 */
export type EtcVerdict = 'same' | 'changed' | 'changed-not-dnsmasq';

export interface Activation {
  etc: 'changed' | 'same';
  services: 'systemd' | 'serve' | 'none';
  message: string;
}

export interface ActivateContext {
  target: Target;
  /** The served root (the symlink) on the target. */
  dest: string;
  /** serve's --run-dir on the target, where serve.pid, serve.json and reload.json live. */
  runDir: string;
}

const MANIFEST_PATH = `/${MANIFEST}`;
const where = (c: ActivateContext) => c.target.host ?? 'this machine';

/** Prints `etc\tsame|changed`; exits 3 with `failed\t<tool>\t<file>` when a tool refuses the new configs. */
function precheckScript(dest: string, inc: string): string {
  return [
    'set -u',
    `d=${shq(dest)}; inc=${shq(inc)}`,
    'if [ -d "$d/etc" ] && diff -r -q -- "$d/etc" "$inc/etc" >/dev/null 2>&1; then printf "etc\\tsame\\n"; exit 0; fi',
    'printf "etc\\tchanged\\n"',
    `conf=${shq(DNSMASQ_CONF)}`,
    'a=$(grep -v "^#" -- "$d/$conf" 2>/dev/null) && b=$(grep -v "^#" -- "$inc/$conf" 2>/dev/null) && [ "$a" = "$b" ] && printf "dnsmasq\\tsame\\n"',
    // A shared node0 runs the distro nginx with a conf.d snippet: the tree's whole nginx.conf is not used.
    `if [ -f ${shq(MANIFEST_PATH)} ] && [ ! -f ${shq(`/${UNIT_DIR}/${NGINX_UNIT}`)} ]; then`,
    checkScript(treeConfigChecks(inc, 'shared')),
    'else',
    checkScript(treeConfigChecks(inc, 'dedicated')),
    'fi',
  ].join('\n');
}

/** Prints `systemd\t<units…>`, `serve\t<pid>` or `none\t<why>`: what runs node0's services for dest. */
function findScript(c: ActivateContext): string {
  return [
    'set -u',
    `d=${shq(c.dest)}; run=${shq(c.runDir)}; m=${shq(MANIFEST_PATH)}`,
    'units=',
    `if [ -f "$m" ] && grep -qF -- "\\"root\\": \\"$d\\"" "$m"; then`,
    `  units=${shq(`${WATCH_UNIT} ${DNSMASQ_UNIT}`)}`,
    `  if [ -f ${shq(`/${UNIT_DIR}/${NGINX_UNIT}`)} ]; then units="$units ${NGINX_UNIT}"; else units="$units nginx.service"; fi`,
    '  if [ -d /run/systemd/system ]; then printf "systemd\\t%s\\n" "$units"; exit 0; fi',
    'fi',
    `if [ -f "$run/${SERVE_PID}" ] && pid=$(head -n 1 -- "$run/${SERVE_PID}") && kill -0 "$pid" 2>/dev/null && grep -qF -- "\\"root\\": \\"$d\\"" "$run/${SERVE_INFO}"; then`,
    '  printf "serve\\t%s\\n" "$pid"; exit 0',
    'fi',
    'if [ -n "$units" ]; then printf "none\\tnode0 install put units for it here, but systemd is not running\\n"; else printf "none\\t\\n"; fi',
  ].join('\n');
}

/** SIGHUP to serve, then waits for its reload.json to change; prints `reload\t<json>`. */
function serveReloadScript(runDir: string, pid: string): string {
  return [
    'set -u',
    `run=${shq(runDir)}; pid=${shq(pid)}; f="$run/${RELOAD_RESULT}"`,
    'before=$(cat -- "$f" 2>/dev/null || true)',
    'kill -HUP "$pid"',
    'i=0',
    'while [ "$i" -lt 600 ]; do',
    '  now=$(cat -- "$f" 2>/dev/null || true)',
    '  if [ -n "$now" ] && [ "$now" != "$before" ]; then printf "reload\\t%s\\n" "$now"; exit 0; fi',
    '  kill -0 "$pid" 2>/dev/null || { echo "serve (pid $pid) ended during the reload" >&2; exit 5; }',
    '  sleep 0.1; i=$((i + 1))',
    'done',
    'echo "serve (pid $pid) did not report the reload within 60 s" >&2; exit 5',
  ].join('\n');
}

function switchScript(dest: string, release: string): string {
  // The same one-rename switch as deploy's publish step, back to the previous release.
  return ['set -eu', `d=${shq(dest)}`, `ln -s -- ${shq(`${basename(dest)}.releases/${basename(release)}`)} "$d.tmp-$$"`, 'mv -fT -- "$d.tmp-$$" "$d"'].join('\n');
}

/** Before the switch: the real tools on the new release's configs; a refusal removes it and throws. */
export async function precheckRelease(c: ActivateContext, inc: string, previous: string | null): Promise<EtcVerdict> {
  const refuse = async (what: string): Promise<never> => {
    await runScript(c.target, `rm -rf -- ${shq(inc)}`, { nothrow: true });
    throw new StageError('deploy', `--activate: ${what}\n  nothing was switched${previous ? `: ${previous} stays live` : ''}`);
  };
  const r = await runScript(c.target, precheckScript(c.dest, inc), { nothrow: true });
  if (r.exitCode === 3) {
    const [, tool, file] = (r.stdout.split('\n').find((l) => l.startsWith('failed\t')) ?? '').split('\t');
    return refuse(`${tool} refuses the new release's ${file ? basename(file) : 'config'} on ${where(c)}:\n${r.stderr.trim().replace(/^/gm, '    ')}`);
  }
  if (r.exitCode !== 0) return refuse(`checking the new release on ${where(c)} failed (exit ${r.exitCode}):\n${r.stderr.trim()}`);
  const etc: EtcVerdict = r.stdout.includes('etc\tsame') ? 'same' : r.stdout.includes('dnsmasq\tsame') ? 'changed-not-dnsmasq' : 'changed';
  // A serve running here: its own configs, rendered from the new spec as serve will render them on SIGHUP.
  if (etc !== 'same' && !c.target.host && existsSync(join(c.runDir, SERVE_INFO))) {
    const info = JSON.parse(await readFile(join(c.runDir, SERVE_INFO), 'utf8')) as ServeInfo;
    if (info.root === c.dest) {
      const tmp = await mkdtemp(join(tmpdir(), 'pc-activate-'));
      try {
        const plan = planCluster((await loadSpec(join(inc, SERVED_SPEC))).spec);
        await prepareConfigs({ plan, root: info.root, runDir: tmp, logDir: info.logDir, stateFile: info.stateFile, interface: info.interface, timeoutMs: 0, onEvent: () => {} }, 'the new release was not switched');
      } catch (e) {
        return refuse((e as Error).message.replace(/^serve: /, "serve's runtime config: "));
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
    }
  }
  return etc;
}

/** After the switch: reload whatever runs node0's services; on failure switch back and throw. */
export async function activate(c: ActivateContext, verdict: EtcVerdict, previous: string | null): Promise<Activation> {
  const etc = verdict === 'same' ? 'same' : 'changed';
  const found = (await runScript(c.target, findScript(c))).stdout.trim().split('\t');
  const [kind, value = ''] = found as [string, string?];
  if (kind === 'systemd') {
    // The watcher restarts on every release: its writable link directories were bound at its start.
    const units = verdict === 'same' ? [WATCH_UNIT] : value.split(' ').filter((u) => verdict === 'changed' || u !== DNSMASQ_UNIT);
    const r = await runScript(c.target, `systemctl reload-or-restart -- ${units.map(shq).join(' ')}`, { nothrow: true });
    if (r.exitCode !== 0) return rollBack(c, previous, `systemctl reload-or-restart ${units.join(' ')} failed on ${where(c)}:\n${r.stderr.trim().replace(/^/gm, '    ')}`, units);
    return { etc, services: 'systemd', message: `reloaded ${units.join(', ')} on ${where(c)}` };
  }
  if (kind === 'serve') {
    if (etc === 'same') return { etc, services: 'serve', message: `etc/ unchanged: portacluster serve (pid ${value}) serves the new release as it is` };
    const r = await runScript(c.target, serveReloadScript(c.runDir, value), { nothrow: true });
    const line = r.stdout.split('\n').find((l) => l.startsWith('reload\t'));
    const result = line ? (JSON.parse(line.slice('reload\t'.length)) as { ok: boolean; message: string }) : null;
    if (r.exitCode !== 0 || !result) return rollBack(c, previous, r.stderr.trim() || `serve (pid ${value}) gave no reload result`, null, value);
    if (!result.ok) return rollBack(c, previous, `portacluster serve (pid ${value}) refused the reload and keeps its previous config:\n    ${result.message}`, null);
    return { etc, services: 'serve', message: `portacluster serve (pid ${value}) ${result.message}` };
  }
  const why = value ? ` (${value})` : '';
  return { etc, services: 'none', message: `no running services found for ${c.dest} on ${where(c)}${why}\n  hint: start them with \`portacluster node0 install --root ${c.dest}\` (systemd) or \`portacluster serve --root ${c.dest}\`` };
}

async function rollBack(c: ActivateContext, previous: string | null, what: string, units: string[] | null, servePid?: string): Promise<never> {
  if (!previous) throw new StageError('deploy', `--activate: ${what}\n  there is no previous release to switch back to`);
  await runScript(c.target, switchScript(c.dest, previous));
  // Best effort: the services go back onto the previous release's configs.
  if (units) await runScript(c.target, `systemctl reload-or-restart -- ${units.map(shq).join(' ')}`, { nothrow: true });
  if (servePid) await runScript(c.target, serveReloadScript(c.runDir, servePid), { nothrow: true });
  throw new StageError('deploy', `--activate: ${what}\n  switched ${c.dest} back to ${previous}`);
}
