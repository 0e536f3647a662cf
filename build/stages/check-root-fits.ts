/**
 * Image mode writes the filesystem image onto the root partition whole: a layout whose root partition is
 * smaller than the image on the smallest disk the spec allows (disk.minSize) could never install. The
 * build knows both once the image is packed, so it refuses there, with both sizes, instead of every node
 * refusing later (installer/lib/30-disk.sh `check_image_fits`, the same arithmetic on the node's real disk).
 */
import { StageError } from '../lib/errors.ts';
import type { Plan } from '../plan/plan.ts';
import { formatSize } from '../spec/values.ts';

const MIB = 1024 ** 2;
const SECTOR = 512;

/**
 * The root partition's size on a disk of `diskBytes`, as sfdisk lays out installer/lib/30-disk.sh's table:
 * every partition on a 1 MiB boundary after the first MiB, fixed sizes rounded up to KiB, "rest" to the end
 * (on GPT to the last 1 MiB boundary before the 33-sector backup table). null: no partition mounted at /.
 */
export function rootPartitionBytes(disk: Plan['disk'], diskBytes: number): number | null {
  const root = disk.partitions.find((p) => p.mountpoint === '/');
  if (!root) return null;
  if (root.sizeBytes !== null) return Math.ceil(root.sizeBytes / 1024) * 1024;
  const start = MIB + disk.partitions.filter((p) => p !== root && p.sizeBytes !== null).reduce((sum, p) => sum + Math.ceil(p.sizeBytes! / MIB) * MIB, 0);
  const sectors = Math.floor(diskBytes / SECTOR);
  const end = disk.table === 'gpt' ? Math.floor((sectors - 33) / 2048) * 2048 * SECTOR : sectors * SECTOR;
  return end - start;
}

export async function checkRootFits(plan: Plan, imageBytes: number): Promise<{ rootBytes: number }> {
  const rootBytes = rootPartitionBytes(plan.disk, plan.disk.minBytes);
  if (rootBytes === null) throw new StageError('check-root-fits', 'the disk layout has no partition mounted at /');
  if (rootBytes < imageBytes) {
    const root = plan.disk.partitions.find((p) => p.mountpoint === '/')!;
    throw new StageError(
      'check-root-fits',
      `the filesystem image needs ${imageBytes} bytes (${formatSize(imageBytes)}), but the root partition (disk.partitions[${root.number - 1}]) has ${rootBytes} bytes (${formatSize(rootBytes)}) on a disk of disk.minSize ${formatSize(plan.disk.minBytes)}: no node could install it\n  hint: ${root.sizeBytes === null ? 'raise disk.minSize' : 'make the root partition larger, or "rest"'}, or use image.installMode "tarball"`,
    );
  }
  return { rootBytes };
}
