/**
 * What a node boots is decided by its per-node links in the served tree: pxe/pxelinux.cfg/01-<mac> and,
 * where the iPXE tree exists, pxe/ipxe/01-<mac>.ipxe. nodeLinks() is the one place that knows them; a
 * switch moves all of a node's links together. Each link is replaced atomically (a new link under a
 * temporary name, renamed over the old one), so a TFTP or HTTP read at any moment sees the old target or
 * the new one, never a missing or dangling link, even when several switches race.
 */
import { lstat, readlink, stat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError, StageError } from '../lib/errors.ts';
import type { Plan, PlanNode } from '../plan/plan.ts';
import { IPXE_DIR, PXELINUX_DIR, ipxeNodeFile, ipxeProfileFile, pxelinuxNodeFile } from '../layout.ts';
import { shq } from '../render/shell.ts';
import { parseMac } from '../spec/values.ts';
import { runScript, type Target } from './target.ts';
import { replaceAtomically } from '../lib/atomic.ts';

export interface NodeLink {
  /** Directory relative to the served root. */
  dir: string;
  name: string;
  /** Relative target: the profile's file in the same directory. */
  target: string;
  /** Required links fail the switch when their directory is missing; optional ones are skipped. */
  required: boolean;
}

/** Every per-node link for a node booting `profile`. The first is the primary one that status reads. */
export function nodeLinks(node: Pick<PlanNode, 'mac'>, profile: string): NodeLink[] {
  return [
    { dir: PXELINUX_DIR, name: pxelinuxNodeFile(node.mac), target: profile, required: true },
    { dir: IPXE_DIR, name: ipxeNodeFile(node.mac), target: ipxeProfileFile(profile), required: false },
  ];
}

/** Node selectors (host names or MACs in any spelling) → plan nodes; unknown selectors fail them all. */
export function resolveNodes<N extends Pick<PlanNode, 'name' | 'mac'>>(nodes: readonly N[], selectors: readonly string[], all = false): N[] {
  if (all && selectors.length) throw new UsageError('give node names or --all, not both');
  if (all) return [...nodes];
  if (!selectors.length) throw new UsageError('name at least one node (host name or MAC), or --all');
  const picked = new Map<string, N>();
  const unknown: string[] = [];
  for (const s of selectors) {
    const mac = parseMac(s);
    const node = nodes.find((n) => n.name === s || (mac !== null && n.mac === mac));
    if (node) picked.set(node.name, node);
    else unknown.push(s);
  }
  if (unknown.length) {
    throw new UsageError(`unknown node${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}; nothing was switched\n  hint: the spec's nodes are ${nodes.map((n) => n.name).join(', ')}`);
  }
  return [...picked.values()];
}

export interface SwitchResult {
  node: string;
  mac: string;
  /** Profile before the switch (null: no link). */
  from: string | null;
  to: string;
  /** Links written, relative to the root. */
  links: string[];
}

export interface SwitchOptions {
  /** The served root (dist/ or /srv/public) on the target. */
  root: string;
  target?: Target;
  /** Run the sh script even locally (tests prove the remote path this way). */
  viaShell?: boolean;
  /**
   * The boot servers' trees, by server name (serverLinks()): a node behind one boots its link there, so a
   * switch writes that link first, over ssh, then node0's (the record status and the watcher read).
   */
  servers?: ReadonlyMap<string, ServerTree>;
}

/** Where a boot server's copy of the tree lives: its ssh target and its served root. */
export interface ServerTree {
  target: Target;
  root: string;
}

/** Each boot server's tree as a switch reaches it: `<ssh>` at admin.servedRoot, with node0's ssh config. */
export function serverLinks(plan: Pick<Plan, 'bootServers' | 'admin'>, sshConfig?: string): Map<string, ServerTree> {
  return new Map(plan.bootServers.map((b) => [b.name, { target: { host: b.ssh, ...(sshConfig ? { sshConfig } : {}) }, root: plan.admin.servedRoot }]));
}

interface Op extends NodeLink {
  node: string;
}

function ops(nodes: readonly Pick<PlanNode, 'name' | 'mac'>[], profile: string): Op[] {
  return nodes.flatMap((n) => nodeLinks(n, profile).map((l) => ({ ...l, node: n.name })));
}

/** A missing tree is the everyday case (not built or deployed yet, a typo in --root): say so plainly. */
export async function assertServedTree(root: string, command: string): Promise<void> {
  if (await isDir(join(root, PXELINUX_DIR))) return;
  const what = (await isDir(root)) ? `${root} has no ${PXELINUX_DIR}` : `${root} does not exist`;
  throw new StageError(command, `no served tree at ${root} (${what})\n  hint: run \`portacluster build\` (then \`portacluster deploy\`), or name the tree with --root DIR`);
}

const exists = (p: string) => stat(p).then(() => true, () => false);
const isDir = (p: string) => stat(p).then((s) => s.isDirectory(), () => false);

/** Switches nodes to a profile: checks every target first (nothing is switched when one is missing). */
export async function switchNodes(nodes: readonly PlanNode[], profile: string, o: SwitchOptions): Promise<SwitchResult[]> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(profile)) throw new UsageError(`not a profile name: ${JSON.stringify(profile)}`);
  const list = ops(nodes, profile);
  await switchOnServers(nodes, profile, o.servers);
  const before = o.target?.host || o.viaShell ? await switchRemote(list, o) : await switchLocal(list, o.root);
  return nodes.map((n) => {
    const mine = list.filter((op) => op.node === n.name && before.has(`${op.dir}/${op.name}`));
    const primary = before.get(`${PXELINUX_DIR}/${pxelinuxNodeFile(n.mac)}`);
    return { node: n.name, mac: n.mac, from: primary ?? null, to: profile, links: mine.map((op) => `${op.dir}/${op.name}`) };
  });
}

/**
 * The links of nodes behind boot servers, on their servers, before node0's: a failure leaves node0's record
 * as it was and names the server. Servers in turn: a switch is one short ssh call each.
 */
async function switchOnServers(nodes: readonly Pick<PlanNode, 'name' | 'mac' | 'bootServer'>[], profile: string, servers: SwitchOptions['servers']): Promise<void> {
  const names = [...new Set(nodes.flatMap((n) => (n.bootServer ? [n.bootServer] : [])))];
  for (const name of names) {
    const tree = servers?.get(name);
    const mine = nodes.filter((n) => n.bootServer === name);
    if (!tree) throw new StageError('switch', `${mine.map((n) => n.name).join(', ')} boot${mine.length === 1 ? 's' : ''} from boot server ${name}, and this switch was not given its tree; nothing was switched`);
    try {
      await switchRemote(ops(mine, profile), tree);
    } catch (e) {
      throw new StageError('switch', `on boot server ${name}: ${(e as Error).message.replace(/^switch: /, '')}; node0's links were not switched`);
    }
  }
}

async function switchLocal(list: Op[], root: string): Promise<Map<string, string | null>> {
  await assertServedTree(root, 'switch');
  const missing: string[] = [];
  const skip = new Set<Op>();
  for (const op of list) {
    const dir = join(root, op.dir);
    if (!(await isDir(dir)) && !op.required) skip.add(op);
    else if (!(await exists(join(dir, op.target)))) missing.push(`${op.dir}/${op.target}`);
  }
  if (missing.length) throw new StageError('switch', `${root}: no profile file ${[...new Set(missing)].join(', ')}; nothing was switched`);
  const before = new Map<string, string | null>();
  for (const op of list) {
    if (skip.has(op)) continue;
    const link = join(root, op.dir, op.name);
    before.set(`${op.dir}/${op.name}`, await readlink(link).catch(() => null));
    await replaceAtomically(link, (tmp) => symlink(op.target, tmp));
  }
  return before;
}

/** The same switch as one sh script: check every target, then new link + `mv -T` per link. */
export function switchScript(root: string, list: readonly NodeLink[]): string {
  const lines = [
    'set -eu',
    `cd -- ${shq(root)}`,
    'missing=',
    'check() { if [ ! -d "$1" ] && [ "$3" = optional ]; then return 0; fi; [ -e "$1/$2" ] || missing="$missing $1/$2"; }',
    ...new Set(list.map((l) => `check ${shq(l.dir)} ${shq(l.target)} ${l.required ? 'required' : 'optional'}`)),
    'if [ -n "$missing" ]; then echo "no profile file$missing; nothing was switched" >&2; exit 3; fi',
    // GNU mv -T renames onto the link itself (never into a directory it points at), atomically.
    'sw() { [ -d "$1" ] || return 0; old=$(readlink -- "$1/$2" || true); tmp="$1/.$2.tmp-$$"; rm -f -- "$tmp"; ln -s -- "$3" "$tmp"; mv -fT -- "$tmp" "$1/$2"; printf \'%s/%s\\t%s\\n\' "$1" "$2" "$old"; }',
    ...list.map((l) => `sw ${shq(l.dir)} ${shq(l.name)} ${shq(l.target)}`),
  ];
  return lines.join('\n') + '\n';
}

async function switchRemote(list: Op[], o: SwitchOptions): Promise<Map<string, string | null>> {
  const r = await runScript(o.target ?? {}, switchScript(o.root, list), { nothrow: true });
  if (r.exitCode === 3) throw new StageError('switch', `${o.target?.host ? o.target.host + ':' : ''}${o.root}: ${r.stderr.trim()}`);
  if (r.exitCode !== 0) throw new StageError('switch', `switching links in ${o.root}${o.target?.host ? ' on ' + o.target.host : ''} failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
  const before = new Map<string, string | null>();
  for (const line of r.stdout.split('\n')) {
    const [path, old] = line.split('\t');
    if (path) before.set(path, old || null);
  }
  return before;
}

/** Each node's current profile, read from its primary link (null: no link, or not a link). */
export async function readProfiles(nodes: readonly Pick<PlanNode, 'name' | 'mac'>[], o: SwitchOptions): Promise<Map<string, string | null>> {
  const out = new Map<string, string | null>();
  if (o.target?.host || o.viaShell) {
    const script = ['cd -- ' + shq(join(o.root, PXELINUX_DIR)) + ' || exit 3', ...nodes.map((n) => `printf '%s\\t%s\\n' ${shq(n.name)} "$(readlink -- ${shq(pxelinuxNodeFile(n.mac))} || true)"`)].join('\n');
    const r = await runScript(o.target ?? {}, script, { nothrow: true });
    if (r.exitCode !== 0) throw new StageError('status', `cannot read ${o.root}/${PXELINUX_DIR}: ${r.stderr.trim()}`);
    for (const line of r.stdout.split('\n')) {
      const [name, target] = line.split('\t');
      if (name) out.set(name, target || null);
    }
    return out;
  }
  await assertServedTree(o.root, 'status');
  for (const n of nodes) {
    const link = join(o.root, PXELINUX_DIR, pxelinuxNodeFile(n.mac));
    const isLink = await lstat(link).then((s) => s.isSymbolicLink(), () => false);
    out.set(n.name, isLink ? await readlink(link) : null);
  }
  return out;
}
