/**
 * Which SystemRescue generation an ISO holds, decided from its file list (read with xorriso, no mount),
 * never from its file name: a renamed or mirrored ISO must still get the right boot entries.
 */
import { CommandError, HostToolError, StageError } from '../lib/errors.ts';
import { run } from '../lib/run.ts';

/** Legacy SystemRescueCd 4.x/5.x (Gentoo based). Paths are as stored in the ISO, with a leading "/". */
export interface LegacyLayout {
  kind: 'sysrcd-legacy';
  kernel: string;
  initrd: string;
  rootImage: string;
  rootChecksum: string;
  versionFile?: string;
  /** rescue32, altker64… present on the ISO; not used for PXE, reported for information. */
  otherKernels: string[];
}

/** Modern SystemRescue 6+ (archiso based). */
export interface ModernLayout {
  kind: 'sysrcd-modern';
  kernel: string;
  initramfs: string;
  /** Microcode images present, in load order (intel, amd); they must precede the initramfs. */
  ucode: string[];
  rootImage: string;
  rootChecksum: string;
  versionFile?: string;
}

export type IsoLayout = LegacyLayout | ModernLayout;

const STAGE = 'extract-iso';

const LEGACY = {
  required: { kernel: '/isolinux/rescue64', initrd: '/isolinux/initram.igz', rootImage: '/sysrcd.dat', rootChecksum: '/sysrcd.md5' },
  optional: { versionFile: '/version' },
  otherKernels: ['/isolinux/rescue32', '/isolinux/altker64', '/isolinux/altker32'],
} as const;

const MODERN = {
  required: {
    kernel: '/sysresccd/boot/x86_64/vmlinuz',
    initramfs: '/sysresccd/boot/x86_64/sysresccd.img',
    rootImage: '/sysresccd/x86_64/airootfs.sfs',
    rootChecksum: '/sysresccd/x86_64/airootfs.sha512',
  },
  optional: { versionFile: '/sysresccd/VERSION' },
  ucode: ['/sysresccd/boot/intel_ucode.img', '/sysresccd/boot/amd_ucode.img'],
} as const;

/** Every regular file in the ISO, as absolute ISO paths ("/isolinux/rescue64"). */
/** `name`: how the user knows the ISO (the spec's installerEnv.path or url), for messages; default iso. */
export async function listIsoFiles(iso: string, name = iso): Promise<string[]> {
  let stdout: string;
  let stderr: string;
  try {
    // -find prints one shell-quoted path per line; -type f leaves directories out.
    ({ stdout, stderr } = await run(['xorriso', '-indev', iso, '-find', '/', '-type', 'f']));
  } catch (err) {
    if (err instanceof CommandError && err.exitCode === 127)
      throw new HostToolError("Could not find 'xorriso', which is required to read the SystemRescue ISO without mounting it (Debian: xorriso, Arch: libisoburn)");
    if (err instanceof CommandError) throw new StageError(STAGE, `cannot read ${name} as an ISO 9660 image\n${err.message}`);
    throw err;
  }
  const files = stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(unquoteShellWord);
  // xorriso happily opens any file as blank media: no files at all means it is no ISO image.
  if (files.length === 0) {
    const status = stderr.match(/^Media status : (.*)$/m)?.[1];
    throw new StageError(STAGE, `cannot read ${name} as an ISO 9660 image: xorriso finds no files in it${status ? ` (media status: ${status})` : ''}`);
  }
  return files;
}

/** Undoes xorriso's quoting: 'abc', with embedded quotes as '"'"' (or \'). */
export function unquoteShellWord(word: string): string {
  let out = '';
  const re = /'([^']*)'|"([^"]*)"|\\(.)|([^'"\\]+)/g;
  for (const m of word.trim().matchAll(re)) out += m[1] ?? m[2] ?? m[3] ?? m[4] ?? '';
  return out;
}

/**
 * Pure: the layout from a file list. Names are matched case-insensitively (an ISO without Rock Ridge
 * shows upper-case ISO 9660 names), and the stored spelling is kept for extraction.
 */
export function detectLayout(files: readonly string[], iso = 'the ISO'): IsoLayout {
  const byLower = new Map<string, string>();
  for (const f of files) byLower.set(f.replace(/;1$/, '').replace(/\.$/, '').toLowerCase(), f);
  const find = (p: string) => byLower.get(p.toLowerCase());
  const missing = (req: Record<string, string>) => Object.values(req).filter((p) => !find(p));
  const pick = <K extends string>(req: Record<K, string>) => Object.fromEntries(Object.entries(req).map(([k, p]) => [k, find(p as string)])) as Record<K, string>;

  const missingModern = missing(MODERN.required);
  if (missingModern.length === 0) {
    const version = find(MODERN.optional.versionFile);
    return {
      kind: 'sysrcd-modern',
      ...pick(MODERN.required),
      ucode: MODERN.ucode.map(find).filter((p): p is string => p !== undefined),
      ...(version ? { versionFile: version } : {}),
    };
  }
  const missingLegacy = missing(LEGACY.required);
  if (missingLegacy.length === 0) {
    const version = find(LEGACY.optional.versionFile);
    return {
      kind: 'sysrcd-legacy',
      ...pick(LEGACY.required),
      otherKernels: LEGACY.otherKernels.map(find).filter((p): p is string => p !== undefined),
      ...(version ? { versionFile: version } : {}),
    };
  }

  const top = [...new Set(files.map((f) => f.split('/').filter(Boolean)[0]).filter(Boolean))].sort();
  const partly = (m: string[], req: object) => m.length < Object.keys(req).length;
  const hint = partly(missingModern, MODERN.required)
    ? 'it has some modern SystemRescue files: is the ISO complete?'
    : partly(missingLegacy, LEGACY.required)
      ? 'it has some legacy SystemRescueCd files: is the ISO complete?'
      : "give the SystemRescue ISO itself, not another distribution's";
  throw new StageError(
    STAGE,
    `${iso} is neither a legacy SystemRescueCd (4.x/5.x) nor a modern SystemRescue (6+) ISO\n` +
      `  found at the top level: ${top.length ? top.join(', ') : '(no files)'}\n` +
      `  missing for modern: ${missingModern.join(', ')}\n` +
      `  missing for legacy: ${missingLegacy.join(', ')}\n` +
      `  hint: ${hint}`,
  );
}

export async function readIsoLayout(iso: string, name = iso): Promise<IsoLayout> {
  return detectLayout(await listIsoFiles(iso, name), name);
}
