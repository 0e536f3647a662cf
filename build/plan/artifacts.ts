/**
 * What the stages hand to the renderers, below both so either may import it: the installer environment
 * a stage left in dist/ (the boot files and every file it wrote).
 */

export type InstallerEnvKind = 'sysrcd-legacy' | 'sysrcd-modern' | 'builtin';

export interface InstallerEnvArtifact {
  kind: InstallerEnvKind;
  version: string;
  /** File name relative to the TFTP root (dist/pxe), e.g. "sysrcd-kernel". */
  kernel: string;
  /** Relative to the TFTP root, in load order (modern: intel ucode, amd ucode, sysresccd.img). */
  initrds: string[];
  /** Every file written, relative to dist/ (e.g. "pxe/sysrcd-kernel", "sysrcd/sysrcd.dat"). */
  files: string[];
}
