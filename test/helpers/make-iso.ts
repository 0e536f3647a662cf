/**
 * Builds a tiny SystemRescue-shaped ISO with xorriso: the real paths of each generation, small files and
 * real checksum files (md5sum / sha512sum format). Real SystemRescue cannot be downloaded here.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { run } from '../../build/lib/run.ts';
import { FIXED_EPOCH } from './workspace.ts';

export type SysrcdGeneration = 'legacy' | 'modern';

export interface MadeIso {
  path: string;
  sha256: string;
  version: string;
  /** The files put in the ISO (ISO path → content), so tests can compare what comes out. */
  contents: Record<string, string>;
}

export const LEGACY_VERSION = '5.3.2';
export const MODERN_VERSION = '12.00';

function legacyTree(version: string): Record<string, string> {
  return {
    'isolinux/rescue64': 'legacy 64-bit kernel\n',
    'isolinux/rescue32': 'legacy 32-bit kernel\n',
    'isolinux/altker64': 'legacy alternative kernel\n',
    'isolinux/initram.igz': 'legacy initramfs\n',
    'isolinux/isolinux.cfg': 'DEFAULT rescue64\n',
    'sysrcd.dat': 'legacy squashfs root '.repeat(200),
    version: `${version}\n`,
  };
}

function modernTree(version: string): Record<string, string> {
  return {
    'sysresccd/boot/x86_64/vmlinuz': 'modern kernel\n',
    'sysresccd/boot/x86_64/sysresccd.img': 'modern initramfs\n',
    'sysresccd/boot/intel_ucode.img': 'intel microcode\n',
    'sysresccd/boot/amd_ucode.img': 'amd microcode\n',
    'sysresccd/x86_64/airootfs.sfs': 'modern squashfs root '.repeat(200),
    'sysresccd/VERSION': `${version}\n`,
    'sysresccd/pkglist.x86_64.txt': 'bash 5.2\ncurl 8.5\n',
    'isolinux/isolinux.cfg': 'DEFAULT sysresccd\n',
    'EFI/boot/bootx64.efi': 'not really an EFI binary\n',
    'sysrescue.d/100-defaults.yaml': 'global:\n  copytoram: false\n',
  };
}

/**
 * Writes `<dir>/<generation>-src/` and `<dir>/<generation>.iso`. With corrupt, the root image no longer
 * matches the ISO's own checksum file (as a bad burn or a tampered mirror would).
 */
export async function makeSysrcdIso(dir: string, generation: SysrcdGeneration, o: { corrupt?: boolean; version?: string } = {}): Promise<MadeIso> {
  const version = o.version ?? (generation === 'legacy' ? LEGACY_VERSION : MODERN_VERSION);
  const tree = generation === 'legacy' ? legacyTree(version) : modernTree(version);
  if (generation === 'legacy') {
    tree['sysrcd.md5'] = `${createHash('md5').update(tree['sysrcd.dat']!).digest('hex')}  sysrcd.dat\n`;
  } else {
    tree['sysresccd/x86_64/airootfs.sha512'] = `${createHash('sha512').update(tree['sysresccd/x86_64/airootfs.sfs']!).digest('hex')}  airootfs.sfs\n`;
  }
  if (o.corrupt) {
    const root = generation === 'legacy' ? 'sysrcd.dat' : 'sysresccd/x86_64/airootfs.sfs';
    tree[root] = 'X' + tree[root]!.slice(1);
  }

  const src = join(dir, `${generation}-src`);
  await rm(src, { recursive: true, force: true });
  const dirs = new Set<string>([src]);
  for (const [rel, text] of Object.entries(tree)) {
    await mkdir(dirname(join(src, rel)), { recursive: true });
    await writeFile(join(src, rel), text);
    await utimes(join(src, rel), FIXED_EPOCH, FIXED_EPOCH);
    for (let d = dirname(rel); d !== '.'; d = dirname(d)) dirs.add(join(src, d));
  }
  // File dates go into the Rock Ridge entries: pin them so the same call gives the same ISO bytes.
  for (const d of dirs) await utimes(d, FIXED_EPOCH, FIXED_EPOCH);
  const path = join(dir, `${generation}${o.corrupt ? '-corrupt' : ''}.iso`);
  await rm(path, { force: true });
  // -R (Rock Ridge) keeps the real lower-case names, as on the real ISOs; SOURCE_DATE_EPOCH makes it reproducible.
  await run(['xorriso', '-as', 'mkisofs', '-quiet', '-R', '-J', '-V', 'SYSRCD', '-o', path, src], {
    env: { ...process.env, SOURCE_DATE_EPOCH: String(FIXED_EPOCH) },
  });
  const sha256 = createHash('sha256').update(await readFile(path)).digest('hex');
  return { path, sha256, version, contents: Object.fromEntries(Object.entries(tree).map(([k, v]) => ['/' + k, v])) };
}
