/** Copies the network boot loaders from the host's syslinux packages into pxe/. */
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { locate, REQUIREMENTS, type StageNeeds } from '../lib/host.ts';
import { StageError } from '../lib/errors.ts';
import { LOADER_FILES } from '../layout.ts';

export interface Bootloaders {
  /** Names written under pxe/. */
  files: string[];
}

const PXELINUX = (['pxelinux', 'ldlinuxBios', 'syslinuxEfi', 'ldlinuxEfi'] as const).map((req) => [req, LOADER_FILES[req]] as const);
const IPXE = (['ipxeBios', 'ipxeEfi'] as const).map((req) => [req, LOADER_FILES[req]] as const);

/** The loaders this stage copies, looked up by the host check like tools. */
export const needs = (o: { ipxe: boolean }): StageNeeds[] => [{ stage: 'copy-bootloaders', needs: [...PXELINUX, ...(o.ipxe ? IPXE : [])].map(([req]) => req) }];

/** pxelinux always (the fallback every node can be switched to); iPXE's TFTP chainloaders when a node uses iPXE. */
export async function copyBootloaders(pxeDir: string, o: { ipxe: boolean }): Promise<Bootloaders> {
  await mkdir(pxeDir, { recursive: true });
  const LOADERS = [...PXELINUX, ...(o.ipxe ? IPXE : [])];
  for (const [req, name] of LOADERS) {
    const from = await locate(REQUIREMENTS[req]);
    if (!from) throw new StageError('copy-bootloaders', `${name} not found (install ${REQUIREMENTS[req].debian})`);
    await copyFile(from, join(pxeDir, name));
  }
  return { files: LOADERS.map(([, name]) => name) };
}
