/**
 * installer/autorun and rescue/autorun: a shebang, strict mode, the generated data prologue, the
 * hand-written function libraries (common/lib/*.sh, then the profile's lib/*.sh) inlined — SystemRescue
 * fetches one file — and the hand-written main that holds the ordered calls.
 */
import { PlanError } from '../lib/errors.ts';
import type { Plan } from '../plan/plan.ts';
import { dataPrologue, type ShellValue } from './shell.ts';
import { RUNS_DIR, imagePath, urlFor } from '../layout.ts';

export interface ShellSource {
  name: string;
  text: string;
}

export interface ImageRef {
  /** File name under images/. */
  fileName: string;
  sha256: string;
  size: number;
}

/** The filesystem image of image-mode installs; imageBytes: its size once decompressed. */
export interface FsImageRef extends ImageRef {
  imageBytes: number;
}

function selector(t: Plan['disk']['target']): { kind: string; name: string } {
  if ('byId' in t) return { kind: 'by-id', name: t.byId };
  if ('byPath' in t) return { kind: 'by-path', name: t.byPath };
  return { kind: 'only-non-removable', name: '' };
}

/** The cluster's disk selector, and per node (same order as PC_NODE_MACS) its own or empty. */
function targetVars(plan: Plan): Record<string, ShellValue> {
  const c = selector(plan.disk.target);
  const own = plan.nodes.map((n) => (n.diskTarget ? selector(n.diskTarget) : { kind: '', name: '' }));
  return { PC_DISK_TARGET_KIND: c.kind, PC_DISK_TARGET_NAME: c.name, PC_NODE_DISK_KINDS: own.map((o) => o.kind), PC_NODE_DISK_NAMES: own.map((o) => o.name) };
}

/** The users every installed or diskless node gets, one array element per user. */
function userVars(plan: Plan): Record<string, ShellValue> {
  return {
    PC_USER_NAMES: plan.users.map((u) => u.name),
    PC_USER_SUDO: plan.users.map((u) => (u.sudo ? 1 : 0)),
    PC_USER_SHELLS: plan.users.map((u) => u.shell),
    PC_USER_KEYS: plan.users.map((u) => u.sshKeys.join('\n')),
  };
}

function commonVars(plan: Plan): Record<string, ShellValue> {
  return {
    PC_CLUSTER: plan.cluster,
    PC_DOMAIN: plan.domain,
    PC_ADMIN_IP: plan.admin.ip,
    PC_HTTP_BASE: plan.admin.httpBase,
    PC_PHONE_HOME_URL: plan.phoneHome.url,
    PC_RUNS_URL: urlFor(plan.admin.httpBase, RUNS_DIR),
    PC_NODE_NAMES: plan.nodes.map((n) => n.name),
    PC_NODE_MACS: plan.nodes.map((n) => n.mac),
    PC_NODE_IPS: plan.nodes.map((n) => n.ip ?? ''),
    PC_NODE_FIRMWARES: plan.nodes.map((n) => n.firmware),
  };
}

export function installerVars(plan: Plan, image: ImageRef, fsImage?: FsImageRef): Record<string, ShellValue> {
  if (plan.image.installMode === 'image' && !fsImage) throw new PlanError('installer autorun: image.installMode "image" needs the filesystem image, and none was packed');
  return {
    ...commonVars(plan),
    PC_IMAGE_URL: urlFor(plan.admin.httpBase, imagePath(image.fileName)),
    PC_IMAGE_SHA256: image.sha256,
    PC_IMAGE_SIZE: image.size,
    PC_INSTALL_MODE: plan.image.installMode,
    PC_FSIMAGE_URL: fsImage ? urlFor(plan.admin.httpBase, imagePath(fsImage.fileName)) : '',
    PC_FSIMAGE_SHA256: fsImage?.sha256 ?? '',
    PC_FSIMAGE_SIZE: fsImage?.size ?? 0,
    PC_FSIMAGE_BYTES: fsImage?.imageBytes ?? 0,
    ...targetVars(plan),
    PC_DISK_MIN_BYTES: plan.disk.minBytes,
    PC_DISK_TABLE: plan.disk.table,
    PC_PART_SIZES: plan.disk.partitions.map((p) => (p.sizeBytes === null ? 'rest' : p.sizeBytes)),
    PC_PART_TYPES: plan.disk.partitions.map((p) => p.type),
    PC_PART_FS: plan.disk.partitions.map((p) => p.filesystem ?? ''),
    PC_PART_MOUNTS: plan.disk.partitions.map((p) => p.mountpoint ?? ''),
    PC_PART_LABELS: plan.disk.partitions.map((p) => p.label ?? ''),
    PC_ROOT_LABEL: plan.os.rootLabel,
    PC_OS_NAME: plan.os.name,
    PC_BOOT_FROM: plan.os.bootFrom,
    PC_SERIAL_CONSOLE: plan.os.serialConsole ?? '',
    PC_KERNEL_ARGS: plan.os.kernelArgs.join(' '),
    ...userVars(plan),
    PC_AFTER_INSTALL: plan.phoneHome.afterInstall,
  };
}

export function rescueVars(plan: Plan): Record<string, ShellValue> {
  return {
    ...commonVars(plan),
    PC_RESCUE_USER: plan.rescue.user,
    PC_RESCUE_KEYS: plan.rescue.sshKeys.join('\n'),
  };
}

export function renderAutorun(o: { title: string; specHash: string; vars: Record<string, ShellValue>; libraries: ShellSource[]; main: ShellSource }): string {
  const parts = [
    '#!/bin/bash',
    `# portacluster ${o.title} — generated; do not edit. Spec ${o.specHash.slice(0, 16)}.`,
    'set -euo pipefail',
    'umask 0022',
    'export LC_ALL=C',
    '',
    dataPrologue('Plan data', o.vars),
    '',
    ...o.libraries.map((l) => `# ---- ${l.name} ----\n${l.text.replace(/^#!.*\n/, '').trimEnd()}\n`),
    `# ---- ${o.main.name} ----`,
    o.main.text.replace(/^#!.*\n/, '').trimEnd(),
    '',
  ];
  return parts.join('\n');
}

/** diskless/autorun: the squashfs root to fetch (its digest pinned) and what configures the node's identity. */
export function disklessVars(plan: Plan, root: ImageRef): Record<string, ShellValue> {
  return {
    ...commonVars(plan),
    PC_ROOT_URL: urlFor(plan.admin.httpBase, imagePath(root.fileName)),
    PC_ROOT_SHA256: root.sha256,
    PC_ROOT_SIZE: root.size,
    PC_OS_NAME: plan.os.name,
    PC_SERIAL_CONSOLE: plan.os.serialConsole ?? '',
    ...userVars(plan),
  };
}

/** discover/autorun: only what every script knows (node0's addresses, the known MACs) and what to do after. */
export function discoverVars(plan: Plan): Record<string, ShellValue> {
  if (!plan.discover) throw new PlanError('the plan has no discover profile (boot.discover is off)');
  return { ...commonVars(plan), PC_DISCOVER_THEN: plan.discover.then };
}
