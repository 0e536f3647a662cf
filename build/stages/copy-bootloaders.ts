/** Copies the network boot loaders from the host's syslinux packages into pxe/. */
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { locate, REQUIREMENTS } from '../lib/host.ts';
import { StageError } from '../lib/errors.ts';

export interface Bootloaders {
  /** Names written under pxe/. */
  files: string[];
}

const LOADERS = [
  ['pxelinux', 'pxelinux.0'],
  ['ldlinuxBios', 'ldlinux.c32'],
  ['syslinuxEfi', 'syslinux.efi'],
  ['ldlinuxEfi', 'ldlinux.e64'],
] as const;

export async function copyBootloaders(pxeDir: string): Promise<Bootloaders> {
  await mkdir(pxeDir, { recursive: true });
  for (const [req, name] of LOADERS) {
    const from = await locate(REQUIREMENTS[req]);
    if (!from) throw new StageError('copy-bootloaders', `${name} not found (install ${REQUIREMENTS[req].debian})`);
    await copyFile(from, join(pxeDir, name));
  }
  return { files: LOADERS.map(([, name]) => name) };
}
