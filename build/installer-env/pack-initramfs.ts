/**
 * Packs a root tree as a reproducible compressed newc cpio: the same tree gives the same bytes.
 */
import { run } from '../lib/run.ts';

/**
 * zstd -T0 on 2 cores, the environment's root (171 MiB): -3 → 54 MiB in 1.4 s, -9 → 48 MiB in 7 s,
 * -12 → 48 MiB in 11 s, -19 → 42 MiB in 60–170 s (lz4 -l -9: 69 MiB). Built once and cached, loaded by
 * every node on every install; the kernel's zstd unpacks every level at the same speed, so the smallest
 * wins the boot (bench/installer-env.ts --packs measures it; docs/figures.md has the figures).
 */
export const ZSTD_LEVEL = 19;

/** The compressor packInitramfs pipes the cpio through (stdin → stdout). */
export const INITRAMFS_COMPRESSOR: readonly string[] = ['zstd', '-q', `-${ZSTD_LEVEL}`, '-T0'];

// Arguments reach the script as $1..$3 and the compressor's argv as the rest, never spliced into its text.
const PACK_SCRIPT = `
set -euo pipefail
cd -- "$1"
# Every mtime pinned: dpkg and our own edits leave build-time stamps.
find . -exec touch --no-dereference --date="@$3" -- {} +
# LC_ALL=C sort: entry order independent of the host's locale. --reproducible: inode and device numbers
# renumbered instead of copied from the build filesystem. newc keeps the numeric uid/gid of each file.
find . -print0 | LC_ALL=C sort -z | cpio --null --create --format=newc --reproducible --quiet \\
  | "\${@:4}" > "$2"
`;

/** `compressor`: another argv for benchmarks comparing packings (the kernel must know its format). */
export async function packInitramfs(root: string, out: string, sourceDateEpoch: number, compressor: readonly string[] = INITRAMFS_COMPRESSOR): Promise<void> {
  await run(['bash', '-c', PACK_SCRIPT, 'pack-initramfs', root, out, String(sourceDateEpoch), ...compressor]);
}
