/**
 * What a node's disk would boot, read from outside the VM: the qcow2 converted to a raw file (qemu-img
 * -U: the VM may still hold it, paused at a power cut; `stop` flushed qemu's own caches), its partition
 * table (sfdisk), each partition's filesystem type and label (blkid -p at the partition's offset), whether
 * the MBR carries boot code, and on request files of a partition's ext4 (debugfs through e2fsprogs'
 * `?offset=` io option: no loop device, no nbd).
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../../build/lib/run.ts';

export interface DiskPartition {
  index: number;
  /** Byte offset of the partition in the disk. */
  offset: number;
  type: string | null;
  label: string | null;
}

export interface DiskView {
  partitions: DiskPartition[];
  /** Any non-zero byte in the MBR's boot code area (bytes 0–439): a BIOS could run it. */
  mbrBootCode: boolean;
  /** ext4 checks of the partitions asked for: e2fsck -fn clean, and the files read. */
  files: Record<string, string | null>;
  fsckClean: boolean | null;
}

/** Inspects `qcow2`; `read` names files to read from the partition labelled `fromLabel` (absent: none). */
export async function inspectDisk(qcow2: string, scratch: string, o: { fromLabel?: string; read?: string[] } = {}): Promise<DiskView> {
  const raw = join(scratch, `inspect-${process.pid}-${Date.now()}.raw`);
  await run(['qemu-img', 'convert', '-U', '-f', 'qcow2', '-O', 'raw', qcow2, raw]);
  try {
    const head = await run(['od', '-A', 'n', '-t', 'x1', '-N', '440', raw]);
    const mbrBootCode = /[1-9a-f]/.test(head.stdout.replace(/\s+/g, '').replace(/0/g, ''));
    const table = await run(['sfdisk', '--json', raw], { nothrow: true });
    const parts = table.exitCode === 0 ? ((JSON.parse(table.stdout).partitiontable.partitions ?? []) as { start: number }[]) : [];
    const partitions: DiskPartition[] = [];
    for (const [i, p] of parts.entries()) {
      const offset = p.start * 512;
      const r = await run(['blkid', '-p', '-o', 'export', '-O', String(offset), raw], { nothrow: true });
      const kv = Object.fromEntries(r.stdout.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
      partitions.push({ index: i + 1, offset, type: kv.TYPE ?? null, label: kv.LABEL ?? null });
    }
    const files: Record<string, string | null> = {};
    let fsckClean: boolean | null = null;
    const target = o.fromLabel ? partitions.find((p) => p.label === o.fromLabel) : undefined;
    if (target) {
      const dev = `${raw}?offset=${target.offset}`;
      fsckClean = (await run(['e2fsck', '-fn', dev], { nothrow: true })).exitCode === 0;
      for (const f of o.read ?? []) {
        const r = await run(['debugfs', '-R', `cat ${f}`, dev], { nothrow: true });
        files[f] = r.exitCode === 0 && !/File not found/.test(r.stderr) ? r.stdout : null;
      }
    }
    return { partitions, mbrBootCode, files, fsckClean };
  } finally {
    await rm(raw, { force: true });
  }
}
