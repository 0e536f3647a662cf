/**
 * node0 install | uninstall: portacluster as systemd services on the admin node (see render/systemd.ts
 * for why these are portacluster's own units). Everything is checked before anything is written (the
 * tree, its spec, the real tools on its configs); files are written with write-then-rename; a failure
 * half-way removes what this run wrote. A manifest (etc/portacluster/node0-install.json under --dest,
 * root's, not under the watcher's state dir which systemd hands to the watcher's user) lists exactly what
 * was written, created and changed, and uninstall reverses that list and nothing else.
 */
import { DNSMASQ_CONF, IPXE_DIR, NGINX_CONF, PXELINUX_DIR, SERVED_SPEC } from '../layout.ts';
import { existsSync } from 'node:fs';
import { chown, mkdir, readFile, rm, rmdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { atomicWrite } from '../lib/atomic.ts';
import { StageError, UsageError } from '../lib/errors.ts';
import { sha256Text as sha256 } from '../lib/hash.ts';
import { run } from '../lib/run.ts';
import { planCluster, type Plan } from '../plan/plan.ts';
import { node0Files, node0Units, SYSTEM_USER, SYSUSERS_FILE, type Node0File, type Node0Mode } from '../render/systemd.ts';
import { loadSpec } from '../spec/load.ts';
import { checkNginxSnippet, checkTreeConfigs } from './node0-checks.ts';

// Paths on node0's own filesystem (under --dest), not in the served tree.
const DISTRO_NGINX_CONF = join('etc', 'nginx', 'nginx.conf');
export const MANIFEST = join('etc', 'portacluster', 'node0-install.json');
// .pwd.lock is systemd-sysusers' lock file, left behind by it.
const ACCOUNT_FILES = ['etc/passwd', 'etc/group', 'etc/shadow', 'etc/gshadow', 'etc/.pwd.lock'];
const LINK_DIRS = [PXELINUX_DIR, IPXE_DIR];
const DISTRO_UNITS: Record<Node0Mode, string[]> = { dedicated: ['dnsmasq.service', 'nginx.service'], shared: ['dnsmasq.service'] };

export interface Node0Options {
  root: string;
  mode: Node0Mode;
  /** Install root prefix: / on node0, a temp dir in tests. */
  dest: string;
  dryRun?: boolean;
  /** The node binary and bin/portacluster.js the watcher unit runs. */
  node: string;
  bin: string;
  log?: (line: string) => void;
}

export interface Node0Manifest {
  mode: Node0Mode;
  root: string;
  units: string[];
  files: { path: string; sha256: string }[];
  /** Directories this install created, parents first. */
  dirs: string[];
  /** Account files (etc/passwd…) that did not exist before systemd-sysusers made them. */
  accountFiles: string[];
  chowned: { path: string; uid: number; gid: number }[];
  /** Distribution units this install disabled (dedicated mode), re-enabled by uninstall. */
  disabled: string[];
}

export interface Node0Result {
  dest: string;
  mode: Node0Mode;
  written: string[];
  units: string[];
  /** What happened to the services, said plainly. */
  services: string;
  dryRun: boolean;
}

/** sd_booted(): systemd is PID 1 exactly when /run/systemd/system exists (a container or chroot has none). */
export function systemdRunning(): boolean {
  return existsSync('/run/systemd/system');
}

function systemctl(dest: string, args: string[]) {
  return run(['systemctl', ...(dest === '/' ? [] : [`--root=${dest}`]), ...args], { nothrow: true });
}

export async function readManifest(dest: string): Promise<Node0Manifest | null> {
  const text = await readFile(join(dest, MANIFEST), 'utf8').catch(() => null);
  return text === null ? null : (JSON.parse(text) as Node0Manifest);
}

async function loadTree(o: Node0Options): Promise<{ tree: string; plan: Plan; linkDirs: string[] }> {
  if (!o.root.startsWith('/')) throw new UsageError(`--root must be an absolute path on node0 (got ${o.root})`);
  const tree = join(o.dest, o.root);
  const specFile = join(tree, SERVED_SPEC);
  if (!existsSync(specFile)) throw new UsageError(`no served tree at ${tree} (no ${SERVED_SPEC})\n  hint: portacluster deploy ${tree} first, or pass --root where the tree is`);
  const plan = planCluster((await loadSpec(specFile)).spec);
  // dnsmasq and nginx run the tree's own configs, which name the spec's servedRoot.
  if (resolve(plan.admin.servedRoot) !== resolve(o.root))
    throw new UsageError(`the tree at ${tree} was built for admin.servedRoot ${plan.admin.servedRoot}, not ${o.root}: its ${DNSMASQ_CONF} and ${NGINX_CONF} serve that path\n  hint: pass --root ${plan.admin.servedRoot}, or set admin.servedRoot to ${o.root} and rebuild`);
  const linkDirs = LINK_DIRS.filter((d) => existsSync(join(tree, d))).map((d) => join(o.root, d));
  if (!linkDirs.length) throw new UsageError(`the tree at ${tree} has neither ${LINK_DIRS.join(' nor ')}: not a built tree`);
  return { tree, plan, linkDirs };
}

/** A uid/gid from the install root's own account files (the user may exist only there). */
async function lookupUser(dest: string, name: string): Promise<{ uid: number; gid: number } | null> {
  const passwd = await readFile(join(dest, 'etc/passwd'), 'utf8').catch(() => '');
  const f = passwd.split('\n').map((l) => l.split(':')).find((p) => p[0] === name);
  return f ? { uid: Number(f[2]), gid: Number(f[3]) } : null;
}

/** The umask must not decide a unit's mode: atomicWrite sets it on the temp file before the rename. */
function writeAtomic(file: string, f: Node0File): Promise<void> {
  return atomicWrite(file, f.text, { mode: f.mode });
}

async function mkdirs(dest: string, rel: string, created: string[]): Promise<void> {
  const parts = rel.split('/');
  for (let i = 1; i <= parts.length; i++) {
    const d = parts.slice(0, i).join('/');
    if (existsSync(join(dest, d))) continue;
    await mkdir(join(dest, d));
    created.push(d);
  }
}

/** Removes what a manifest lists, newest first; returns files left because they changed since. */
async function undo(dest: string, m: Node0Manifest): Promise<string[]> {
  const kept: string[] = [];
  for (const f of [...m.files].reverse()) {
    const text = await readFile(join(dest, f.path)).catch(() => null);
    if (text === null) continue;
    if (sha256(text) !== f.sha256) kept.push(f.path);
    else await rm(join(dest, f.path));
  }
  for (const c of m.chowned) await chown(join(dest, c.path), c.uid, c.gid).catch(() => {});
  for (const a of m.accountFiles) await rm(join(dest, a), { force: true });
  for (const d of [...m.dirs].reverse()) await rmdir(join(dest, d)).catch(() => {});
  return kept;
}

export async function node0Install(o: Node0Options): Promise<Node0Result> {
  const log = o.log ?? (() => {});
  const dest = resolve(o.dest);
  const dstat = await stat(dest).catch(() => null);
  if (!dstat?.isDirectory()) throw new UsageError(`--dest ${o.dest} is not a directory`);
  for (const [what, p] of [['node', o.node], ['the portacluster bin', o.bin]] as const)
    if (/^\/(home|root)(\/|$)/.test(p)) throw new UsageError(`${what} is at ${p}, which the watcher unit's ProtectHome=yes hides\n  hint: install portacluster outside /home and /root (e.g. /opt/portacluster) and run node0 install from there`);
  const { tree, plan, linkDirs } = await loadTree({ ...o, dest });
  const previous = await readManifest(dest);
  if (previous && previous.mode !== o.mode) throw new UsageError(`node0 is installed in ${previous.mode} mode under ${dest}\n  hint: portacluster node0 uninstall first, then install --mode ${o.mode}`);
  const files = node0Files(plan, { mode: o.mode, root: o.root, node: o.node, bin: o.bin, linkDirs });
  const ours = new Set(previous?.files.map((f) => f.path));
  for (const f of files)
    if (existsSync(join(dest, f.path)) && !ours.has(f.path)) throw new UsageError(`${join(dest, f.path)} exists and was not written by portacluster; nothing was written\n  hint: move it away, then run node0 install again`);

  // The real tools on the configs the services will run, before anything is written.
  await checkTreeConfigs(tree, o.mode);
  if (o.mode === 'shared') await checkNginxSnippet(files.find((f) => f.path.endsWith('.conf') && f.path.includes('nginx'))!.text);

  const units = node0Units(o.mode);
  const result: Node0Result = { dest, mode: o.mode, written: files.map((f) => join(dest, f.path)), units, services: '', dryRun: !!o.dryRun };
  if (o.dryRun) {
    result.services = `dry run: would write ${files.length} files and enable ${units.join(', ')}`;
    return result;
  }

  const m: Node0Manifest = previous ?? { mode: o.mode, root: o.root, units, files: [], dirs: [], accountFiles: [], chowned: [], disabled: [] };
  m.units = units;
  const fail = async (what: string, detail: string): Promise<never> => {
    if (!previous) await undo(dest, m);
    throw new StageError('node0', `${what}; ${previous ? 'the files written are left for inspection' : 'everything this run wrote was removed'}:\n${detail.trim().replace(/^/gm, '    ')}`);
  };
  try {
    for (const f of files) {
      await mkdirs(dest, dirname(f.path), m.dirs);
      await writeAtomic(join(dest, f.path), f);
      m.files = [...m.files.filter((x) => x.path !== f.path), { path: f.path, sha256: sha256(f.text) }];
    }
    // The watcher's user: systemd-sysusers, so it is made the same way at boot if /etc is reset.
    const before = ACCOUNT_FILES.filter((a) => existsSync(join(dest, a)));
    const su = await run(['systemd-sysusers', ...(dest === '/' ? [] : [`--root=${dest}`]), join(dest, SYSUSERS_FILE)], { nothrow: true });
    if (su.exitCode !== 0) await fail('systemd-sysusers could not create the portacluster user', su.stderr);
    for (const a of ACCOUNT_FILES) if (!before.includes(a) && existsSync(join(dest, a)) && !m.accountFiles.includes(a)) m.accountFiles.push(a);
    const user = await lookupUser(dest, SYSTEM_USER);
    if (!user) await fail(`systemd-sysusers ran but ${join(dest, 'etc/passwd')} has no ${SYSTEM_USER}`, su.stderr);
    // Only the link directories are the watcher's: it switches node links there, nothing else.
    for (const d of linkDirs) {
      const st = await stat(join(dest, d));
      if (!m.chowned.some((c) => c.path === d)) m.chowned.push({ path: d, uid: st.uid, gid: st.gid });
      await chown(join(dest, d), user!.uid, user!.gid);
    }
    if (o.mode === 'shared' && existsSync(join(dest, DISTRO_NGINX_CONF))) {
      // The distro's config with our snippet included: other sites must still load.
      const t = await run(['nginx', '-t', '-q', '-c', join(dest, DISTRO_NGINX_CONF)], { nothrow: true });
      if (t.exitCode !== 0) await fail(`nginx -t refuses ${join(dest, DISTRO_NGINX_CONF)} with the portacluster snippet`, t.stderr || t.stdout);
    }
    for (const u of DISTRO_UNITS[o.mode]) {
      if ((await systemctl(dest, ['is-enabled', '--quiet', u])).exitCode !== 0) continue;
      const d = await systemctl(dest, ['disable', u]);
      if (d.exitCode !== 0) await fail(`systemctl disable ${u} failed`, d.stderr);
      if (!m.disabled.includes(u)) m.disabled.push(u);
    }
    // systemctl enable makes the .wants/ directory: it is ours to remove if it was not there.
    await mkdirs(dest, 'etc/systemd/system/multi-user.target.wants', m.dirs);
    const en = await systemctl(dest, ['enable', ...units]);
    if (en.exitCode !== 0) await fail(`systemctl enable ${units.join(' ')} failed`, en.stderr);
    await mkdirs(dest, dirname(MANIFEST), m.dirs);
    await writeAtomic(join(dest, MANIFEST), { path: MANIFEST, mode: 0o644, text: JSON.stringify(m, null, 2) + '\n' });
  } catch (e) {
    if (e instanceof StageError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    return fail(`node0 install failed${code === 'EACCES' || code === 'EPERM' ? ' (run it as root: it writes under /etc and changes owners)' : ''}`, (e as Error).message);
  }
  log(`wrote ${files.map((f) => f.path).join(', ')} under ${dest}`);
  result.services = await startServices(dest, o.mode, units);
  return result;
}

/** Starts (or reloads) the services when this is a running systemd; says plainly when it is not. */
async function startServices(dest: string, mode: Node0Mode, units: string[]): Promise<string> {
  if (!systemdRunning()) return 'systemd is not running here: units written, not started';
  if (dest !== '/') return `units written and enabled under ${dest}, not started (--dest is not this system's root)`;
  const steps: string[][] = [['daemon-reload'], ['enable', '--now', ...units], ['restart', ...units], ...(mode === 'shared' ? [['reload-or-restart', 'nginx.service']] : [])];
  for (const s of steps) {
    const r = await systemctl('/', s);
    if (r.exitCode !== 0) throw new StageError('node0', `systemctl ${s.join(' ')} failed; the units are installed (portacluster node0 uninstall removes them):\n${r.stderr.trim().replace(/^/gm, '    ')}\n  hint: journalctl -u ${units.join(' -u ')}`);
  }
  return `started ${units.join(', ')}${mode === 'shared' ? '; reloaded nginx.service with the portacluster site' : ''}`;
}

export async function node0Uninstall(o: { dest: string; dryRun?: boolean }): Promise<Node0Result & { kept: string[] }> {
  const dest = resolve(o.dest);
  const m = await readManifest(dest);
  if (!m) throw new UsageError(`nothing to uninstall: no ${join(dest, MANIFEST)} (node0 install writes it)`);
  const result = { dest, mode: m.mode, written: m.files.map((f) => join(dest, f.path)), units: m.units, services: '', dryRun: !!o.dryRun, kept: [] as string[] };
  if (o.dryRun) {
    result.services = `dry run: would stop and remove ${m.units.join(', ')}`;
    return result;
  }
  const live = systemdRunning() && dest === '/';
  await systemctl(dest, ['disable', ...(live ? ['--now'] : []), ...m.units]);
  for (const u of m.disabled) await systemctl(dest, ['enable', ...(live ? ['--now'] : []), u]);
  result.kept = await undo(dest, m);
  await rm(join(dest, MANIFEST), { force: true });
  for (const d of [...m.dirs].reverse()) await rmdir(join(dest, d)).catch(() => {});
  if (live) {
    await systemctl('/', ['daemon-reload']);
    if (m.mode === 'shared') await systemctl('/', ['reload-or-restart', 'nginx.service']);
  }
  result.services = live ? `stopped and disabled ${m.units.join(', ')}` : systemdRunning() ? `units removed under ${dest}` : 'systemd is not running here: units removed, nothing to stop';
  return result;
}
