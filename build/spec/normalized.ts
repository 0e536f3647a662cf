/** The spec after defaults and canonical forms: what validate.ts produces and the rules and the planner read. */
import type { ClusterSpec } from './schema.ts';

export interface NormalizedPartition {
  sizeBytes: number | null; // null = rest
  type: 'esp' | 'bios_grub' | 'swap' | 'linux';
  filesystem: 'ext4' | 'xfs' | 'vfat' | 'swap' | null;
  mountpoint: string | null;
  label: string | null;
}

/** The spec after defaults and canonical forms; input of the rules and of the planner. */
export type NormalizedSpec = Omit<ClusterSpec, 'disk'> & {
  disk: Omit<ClusterSpec['disk'], 'partitions' | 'minSize'> & { minBytes: number; partitions: NormalizedPartition[] };
};
