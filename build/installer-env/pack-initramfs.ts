/**
 * Packs a root tree as a reproducible compressed newc cpio: the same tree gives the same bytes.
 */
import { run } from '../lib/run.ts';

/**
 * Chosen by the boot, not the size (bench/installer-env.ts --packs, 2026-11-27, the 171 MiB root, zstd
 * -T0 on 2 shared cores): -19 → 42.0 MiB in 60–160 s, -9 → 47.9 MiB in 2.8 s, -3 → 54.0 MiB in 1.1 s;
 * qemu start → autorun 14.1 / 14.0 / 13.8 s direct and 21.7 / 22.0 / 20.4 s over iPXE + HTTP, all inside
 * the noise: the kernel unpacks every level at about the same speed, and 6–12 MiB more on the wire is
 * 0.05–0.1 s at 1 Gb/s. -19 cost the first build up to 160 s on its critical path (bench/first-build.ts);
 * -9 keeps most of -19's size for a slow link at 2–5 % of its time.
 */
export const ZSTD_LEVEL = 9;

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
