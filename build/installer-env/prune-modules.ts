/**
 * Keeps only the kernel modules a PXE-booted installer needs (NICs, disk controllers, filesystems, md/dm)
 * plus everything they depend on, then regenerates modules.dep. The full Debian set is ~400 MB; this
 * keeps a few tens.
 */
import { readFile, readdir, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../lib/run.ts';

/** Path prefixes under `kernel/`: a directory keeps everything below it, a file stem keeps that module. */
export const KEPT_MODULES: readonly string[] = [
  // NICs: virtual, then the common server and desktop families.
  'drivers/net/virtio_net', 'drivers/net/net_failover', 'drivers/net/vmxnet3', 'drivers/net/hyperv',
  'drivers/net/ethernet/intel', 'drivers/net/ethernet/realtek', 'drivers/net/ethernet/broadcom',
  'drivers/net/ethernet/mellanox/mlx4', 'drivers/net/ethernet/mellanox/mlx5', 'drivers/net/ethernet/amazon',
  'drivers/net/ethernet/aquantia', 'drivers/net/ethernet/emulex',
  'drivers/net/ethernet/marvell', 'drivers/net/ethernet/amd',
  'drivers/net/phy', 'drivers/net/mdio', 'drivers/net/mii', 'drivers/net/usb',
  // Storage.
  'drivers/block/virtio_blk', 'drivers/block/loop', 'drivers/block/nbd',
  'drivers/scsi/virtio_scsi', 'drivers/scsi/sd_mod', 'drivers/scsi/sr_mod', 'drivers/scsi/sg',
  'drivers/scsi/scsi_transport_sas', 'drivers/scsi/scsi_transport_spi', 'drivers/scsi/vmw_pvscsi',
  'drivers/scsi/hv_storvsc', 'drivers/scsi/megaraid', 'drivers/scsi/mpt3sas', 'drivers/scsi/hpsa',
  'drivers/scsi/smartpqi', 'drivers/scsi/aacraid', 'drivers/message/fusion',
  'drivers/ata', 'drivers/nvme', 'drivers/md', 'drivers/pci/controller/vmd', 'drivers/mmc',
  'drivers/usb/storage', 'drivers/usb/host', 'drivers/hid/usbhid', 'drivers/hid/hid-generic', 'drivers/cdrom',
  // Virtio transport, entropy, firmware access.
  'drivers/virtio', 'drivers/char/hw_random', 'drivers/hv', 'drivers/firmware/efi',
  // Filesystems the installer makes or reads.
  'fs/ext4', 'fs/jbd2', 'fs/mbcache', 'fs/xfs', 'fs/fat', 'fs/isofs', 'fs/squashfs',
  'fs/overlayfs', 'fs/efivarfs', 'fs/nls/nls_cp437', 'fs/nls/nls_iso8859-1', 'fs/nls/nls_utf8',
  // vfat's default iocharset in Debian's kernel (CONFIG_FAT_DEFAULT_IOCHARSET): without it no ESP mounts.
  'fs/nls/nls_ascii',
  // Loaded by name at run time (checksums through the crypto API), not through modules.dep; lib/ comes
  // in as dependencies.
  'crypto', 'arch/x86/crypto',
  'net/packet',
];

/**
 * Never kept, even below a kept directory: self-tests, what only clusters of hosts use, and NVMe over
 * fabrics (the target side, and the RDMA host that alone pulls in the InfiniBand core, 1.6 MB): a node
 * installs onto its own disks.
 */
export const EXCLUDED_MODULES: readonly string[] = [
  'drivers/md/bcache', 'drivers/md/md-cluster', 'crypto/tcrypt',
  'drivers/nvme/target', 'drivers/nvme/host/nvme-rdma', 'drivers/nvme/host/nvme-fc', 'drivers/infiniband',
];
const MODULE_RE = /\.ko(\.xz|\.zst|\.gz)?$/;

/** `kernel/a/b/name.ko` → true when a kept prefix matches it. */
export function isKept(path: string, kept: readonly string[] = KEPT_MODULES, excluded: readonly string[] = EXCLUDED_MODULES): boolean {
  const rel = path.replace(/^kernel\//, '').replace(MODULE_RE, '');
  const under = (p: string) => rel === p || rel.startsWith(p + '/');
  return kept.some(under) && !excluded.some(under) && !/(^|\/)test_[^/]*$/.test(rel);
}

/** Parses modules.dep into module → its dependencies (paths relative to the modules dir). */
export function parseModulesDep(text: string): Map<string, string[]> {
  const deps = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    deps.set(line.slice(0, colon), line.slice(colon + 1).trim().split(/\s+/).filter(Boolean));
  }
  return deps;
}

/** The kept modules and every module they depend on, transitively. */
export function closure(deps: Map<string, string[]>, kept: readonly string[] = KEPT_MODULES): Set<string> {
  const out = new Set<string>();
  const todo = [...deps.keys()].filter((m) => isKept(m, kept));
  while (todo.length) {
    const m = todo.pop()!;
    if (out.has(m)) continue;
    out.add(m);
    todo.push(...(deps.get(m) ?? []));
  }
  return out;
}

async function walk(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await walk(dir, r)));
    else out.push(r);
  }
  return out;
}

async function removeEmptyDirs(dir: string): Promise<boolean> {
  let empty = true;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isDirectory() && (await removeEmptyDirs(join(dir, e.name)))) await rmdir(join(dir, e.name));
    else empty = false;
  }
  return empty;
}

/** Prunes `<root>/usr/lib/modules/<kver>` in place; returns how many modules were kept and removed. */
export async function pruneModules(root: string, kver: string): Promise<{ kept: number; removed: number }> {
  const modDir = join(root, 'usr/lib/modules', kver);
  const keep = closure(parseModulesDep(await readFile(join(modDir, 'modules.dep'), 'utf8')));
  let removed = 0;
  for (const f of await walk(modDir, 'kernel')) {
    if (MODULE_RE.test(f) && !keep.has(f)) {
      await rm(join(modDir, f));
      removed++;
    }
  }
  await removeEmptyDirs(join(modDir, 'kernel'));
  // The target's own depmod, so the index format matches the kmod that reads it at boot.
  await run(['chroot', root, 'depmod', kver]);
  return { kept: keep.size, removed };
}
