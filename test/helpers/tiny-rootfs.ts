import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const TINY_KVER = '6.1.0-99-amd64';

/**
 * The smallest prepared root a build accepts as `image.rootfs`: an os-release, a kernel and initramfs
 * of its own in /boot, and the matching /lib/modules — enough to pack, extract boot files and render.
 */
export async function makeTinyRootfs(root: string): Promise<string> {
  for (const d of ['boot', `lib/modules/${TINY_KVER}/kernel`, 'etc']) await mkdir(join(root, d), { recursive: true });
  await writeFile(join(root, 'etc/os-release'), 'ID=debian\n');
  await writeFile(join(root, `lib/modules/${TINY_KVER}/modules.dep`), '');
  await writeFile(join(root, `boot/vmlinuz-${TINY_KVER}`), Buffer.alloc(4096, 1));
  await writeFile(join(root, `boot/initrd.img-${TINY_KVER}`), Buffer.alloc(2048, 2));
  return root;
}
