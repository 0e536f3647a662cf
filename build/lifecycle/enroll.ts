/**
 * Enrolment: a discovered machine becomes a node of the spec. Two pure parts and one careful write:
 * - proposeDiskTarget: from the machine's inventory, the install disk and a selector that names exactly
 *   that disk (a /dev/disk/by-id name, else by-path), and whether the cluster's own disk.target would
 *   already pick it (then the node needs no diskTarget of its own);
 * - nodeEntry: the spec entry (name, MAC, IP, firmware from the inventory, profile, diskTarget);
 * - enrollJsonSpec: a JSON spec edited in place with jsonc-parser (the user's formatting and key order
 *   stay; only the new entry is added), validated as a whole before it is written atomically. A
 *   TypeScript spec is code: it is never rewritten; the entry is printed for the user to paste.
 */
import { readFile } from 'node:fs/promises';
import { applyEdits, modify, parse as parseJsonc, type ParseError } from 'jsonc-parser';
import { atomicWrite } from '../lib/atomic.ts';
import { SpecError, UsageError } from '../lib/errors.ts';
import type { DiskTargetT } from '../spec/schema.ts';
import { validateSpec } from '../spec/validate.ts';
import { parseMac } from '../spec/values.ts';
import type { Inventory, InventoryDiskT } from './inventory.ts';

export interface DiskProposal {
  disk: InventoryDiskT;
  /** The selector to write for this node; absent when the cluster's disk.target already picks `disk`. */
  diskTarget?: DiskTargetT;
  /** The disks of this machine the cluster's disk.target matches. */
  clusterMatches: string[];
  warnings: string[];
}

const describeTarget = (t: DiskTargetT): string => ('byId' in t ? `byId ${t.byId}` : 'byPath' in t ? `byPath ${t.byPath}` : 'onlyNonRemovable');

function matches(t: DiskTargetT, d: InventoryDiskT): boolean {
  if ('byId' in t) return d.byId.includes(t.byId);
  if ('byPath' in t) return d.byPath.includes(t.byPath);
  return !d.removable;
}

/** A by-id name that stays with the disk: not a WWN or EUI alias when a model/serial name exists. */
function stableId(d: InventoryDiskT): string | undefined {
  const ids = [...d.byId].sort();
  const rank = (n: string) => (/^(wwn-|nvme-eui\.|nvme-nvme\.)/.test(n) ? 2 : d.serial && n.includes(d.serial) ? 0 : 1);
  return ids.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))[0];
}

/**
 * The install disk: the one disk the cluster's selector picks when it picks exactly one that fits; else
 * the first non-removable disk in kernel order (sda before sdb: usually the one the firmware boots) that
 * is at least minBytes.
 */
export function proposeDiskTarget(inv: Inventory, cluster: DiskTargetT, minBytes: number): DiskProposal {
  const fits = (d: InventoryDiskT) => !d.removable && (d.sizeBytes ?? 0) >= minBytes;
  const clusterMatches = inv.disks.filter((d) => matches(cluster, d));
  const warnings: string[] = [];
  const names = (ds: InventoryDiskT[]) => ds.map((d) => d.name).join(', ');
  if (clusterMatches.length === 1 && fits(clusterMatches[0]!)) return { disk: clusterMatches[0]!, clusterMatches: [clusterMatches[0]!.name], warnings };
  if (clusterMatches.length > 1) warnings.push(`the cluster's disk.target (${describeTarget(cluster)}) matches ${clusterMatches.length} disks of this machine (${names(clusterMatches)}): its installer would refuse, so the node gets its own diskTarget`);
  else if (clusterMatches.length === 0) warnings.push(`the cluster's disk.target (${describeTarget(cluster)}) matches no disk of this machine, so the node gets its own diskTarget`);
  else warnings.push(`the cluster's disk.target picks ${clusterMatches[0]!.name}, which is removable or smaller than the layout needs, so the node gets its own diskTarget`);
  const candidates = inv.disks.filter(fits).sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
  const disk = candidates[0];
  if (!disk) {
    const seen = inv.disks.map((d) => `${d.name} ${d.sizeBytes ?? '?'} bytes${d.removable ? ' removable' : ''}`).join(', ') || 'none';
    throw new UsageError(`no disk of this machine can take the layout: it needs a non-removable disk of at least ${minBytes} bytes (the machine has: ${seen})`);
  }
  const id = stableId(disk);
  if (id) return { disk, diskTarget: { byId: id }, clusterMatches: clusterMatches.map((d) => d.name), warnings };
  const path = [...disk.byPath].sort()[0];
  if (path) return { disk, diskTarget: { byPath: path }, clusterMatches: clusterMatches.map((d) => d.name), warnings };
  throw new UsageError(`disk ${disk.name} has no /dev/disk/by-id or by-path name to select it by; write nodes[].diskTarget by hand`);
}

export interface EnrollRequest {
  name: string;
  mac: string;
  ip?: string;
  profile?: string;
}

export interface NodeEntry {
  name: string;
  mac: string;
  ip?: string;
  firmware: 'bios' | 'uefi';
  profile?: string;
  diskTarget?: DiskTargetT;
}

export function nodeEntry(req: EnrollRequest, inv: Inventory, disk: DiskProposal): NodeEntry {
  return {
    name: req.name,
    mac: parseMac(req.mac) ?? req.mac,
    ...(req.ip ? { ip: req.ip } : {}),
    firmware: inv.firmware,
    ...(req.profile ? { profile: req.profile } : {}),
    ...(disk.diskTarget ? { diskTarget: disk.diskTarget } : {}),
  };
}

type SpecLike = { nodes?: { name?: string; mac?: string; ip?: string }[]; appliances?: { name?: string; mac?: string; ip?: string }[]; admin?: { ip?: string; hostname?: string } };

/** Refuses a name, MAC or IP that an existing entry (node, appliance or node0) already has, naming it. */
export function checkDuplicates(spec: SpecLike, e: NodeEntry): void {
  const mac = parseMac(e.mac);
  const entries = [
    ...(spec.nodes ?? []).map((n, i) => ({ path: `nodes[${i}]`, ...n })),
    ...(spec.appliances ?? []).map((a, i) => ({ path: `appliances[${i}]`, ...a })),
    ...(spec.admin ? [{ path: 'admin', name: spec.admin.hostname ?? 'node0', ip: spec.admin.ip }] : []),
  ];
  for (const x of entries) {
    const what = `${x.path} (${[x.name, x.mac, x.ip].filter(Boolean).join(', ')})`;
    if (x.mac && mac && parseMac(x.mac) === mac) throw new UsageError(`MAC ${mac} is already in the spec: ${what}; nothing was changed`);
    if (x.name === e.name) throw new UsageError(`the name ${e.name} is already in the spec: ${what}; nothing was changed\n  hint: choose another --name`);
    if (e.ip && x.ip === e.ip) throw new UsageError(`the IP ${e.ip} is already in the spec: ${what}; nothing was changed\n  hint: choose another --ip`);
  }
}

/** The indentation the file already uses (two spaces when it cannot tell). */
function formatting(text: string): { insertSpaces: boolean; tabSize: number; eol: string } {
  const indent = /\n([ \t]+)"/.exec(text)?.[1] ?? '  ';
  return { insertSpaces: !indent.startsWith('\t'), tabSize: indent.startsWith('\t') ? 1 : indent.length, eol: text.includes('\r\n') ? '\r\n' : '\n' };
}

/** Adds the entry at the end of `nodes` in a JSON spec, validated before the file is replaced. Returns the new text. */
export async function enrollJsonSpec(file: string, entry: NodeEntry): Promise<string> {
  const text = await readFile(file, 'utf8');
  const errors: ParseError[] = [];
  const spec = parseJsonc(text, errors, { allowTrailingComma: false }) as SpecLike;
  if (errors.length || typeof spec !== 'object' || spec === null) throw new UsageError(`${file}: not a JSON document (at offset ${errors[0]?.offset ?? 0}); nothing was changed`);
  checkDuplicates(spec, entry);
  if (!Array.isArray(spec.nodes)) throw new UsageError(`${file}: has no nodes array to add ${entry.name} to; nothing was changed`);
  const edits = modify(text, ['nodes', spec.nodes.length], entry, { isArrayInsertion: true, formattingOptions: formatting(text) });
  const next = applyEdits(text, edits);
  try {
    validateSpec(JSON.parse(next));
  } catch (e) {
    if (e instanceof SpecError) throw new UsageError(`${file}: with ${entry.name} added the spec would not be valid; nothing was changed\n${e.message}`);
    throw e;
  }
  await atomicWrite(file, next, { durable: true });
  return next;
}

/** For a TypeScript spec: the entry as it would be written inside its `nodes: [...]`. */
export function entryAsTs(e: NodeEntry): string {
  const q = (s: string) => `'${s}'`;
  const target = (t: DiskTargetT) => ('byId' in t ? `{ byId: ${q(t.byId)} }` : 'byPath' in t ? `{ byPath: ${q(t.byPath)} }` : '{ onlyNonRemovable: true }');
  const parts = [`name: ${q(e.name)}`, `mac: ${q(e.mac)}`, ...(e.ip ? [`ip: ${q(e.ip)}`] : []), `firmware: ${q(e.firmware)}`, ...(e.profile ? [`profile: ${q(e.profile)}`] : []), ...(e.diskTarget ? [`diskTarget: ${target(e.diskTarget)}`] : [])];
  return `{ ${parts.join(', ')} },`;
}

/** The 1-based line of `nodes:` in a TypeScript spec, for "paste it there". */
export function nodesLine(text: string): number | null {
  const i = text.search(/\bnodes\s*:\s*\[/);
  return i < 0 ? null : text.slice(0, i).split('\n').length;
}
