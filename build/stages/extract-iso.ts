/**
 * Copies a SystemRescue ISO's boot files out without mounting it (xorriso -osirrox), checks them against
 * the ISO's own checksum file, and places them where each generation fetches them:
 *   legacy  pxe/sysrcd-kernel, pxe/sysrcd-initram.igz; sysrcd/sysrcd.dat (+ .md5) for netboot=
 *   modern  pxe/sysrcd-{vmlinuz,intel-ucode.img,amd-ucode.img,sysresccd.img};
 *           sysrcd/sysresccd/x86_64/airootfs.{sfs,sha512}, because archiso_http_srv=…/sysrcd/ fetches
 *           ${srv}sysresccd/x86_64/airootfs.sfs
 */
import { chmod, copyFile, mkdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { hashFile, isHexDigest, type DigestAlgo } from '../fetch/digest.ts';
import { readIsoLayout, type IsoLayout } from '../iso/layout.ts';
import type { InstallerEnvArtifact } from '../plan/artifacts.ts';
import { CommandError, HostToolError, StageError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import { run } from '../lib/run.ts';
import { SYSRCD_LEGACY_FILES } from '../layout.ts';
import type { StageNeeds } from '../lib/host.ts';

export interface ExtractIsoOptions {
  /** TFTP/HTTP root for boot files: dist/pxe. */
  pxeDir: string;
  /** Web directory for root images: dist/sysrcd. */
  sysrcdDir: string;
  /** Scratch space; the extraction is staged here and verified before anything is placed. */
  workDir: string;
  log: Logger;
  /** The ISO as the spec names it (installerEnv.path or url): errors name it, not the cache copy. */
  source?: string;
  /** What artifact.files are relative to; default: the parent of pxeDir. */
  distDir?: string;
}

const STAGE = 'extract-iso';
/** The host tools this stage runs. */
export const needs: StageNeeds[] = [{ stage: STAGE, needs: ['xorriso'] }];

interface Placement {
  /** Path inside the ISO. */
  from: string;
  /** Destination, absolute. */
  to: string;
}

interface Plan {
  kind: InstallerEnvArtifact['kind'];
  kernel: Placement;
  initrds: Placement[];
  web: Placement[];
  /** The member checked against the ISO's own checksum file, and that file. */
  check: { member: string; sums: string; algo: DigestAlgo };
}

function placements(layout: IsoLayout, o: ExtractIsoOptions): Plan {
  const pxe = (from: string, name: string) => ({ from, to: join(o.pxeDir, name) });
  if (layout.kind === 'sysrcd-legacy') {
    return {
      kind: layout.kind,
      kernel: pxe(layout.kernel, 'sysrcd-kernel'),
      initrds: [pxe(layout.initrd, 'sysrcd-initram.igz')],
      web: [
        { from: layout.rootImage, to: join(o.sysrcdDir, SYSRCD_LEGACY_FILES.root) },
        { from: layout.rootChecksum, to: join(o.sysrcdDir, SYSRCD_LEGACY_FILES.sums) },
      ],
      check: { member: layout.rootImage, sums: layout.rootChecksum, algo: 'md5' },
    };
  }
  const ucodeName = (p: string) => `sysrcd-${basename(p).toLowerCase().replace('_', '-')}`;
  const root = join(o.sysrcdDir, 'sysresccd', 'x86_64');
  return {
    kind: layout.kind,
    kernel: pxe(layout.kernel, 'sysrcd-vmlinuz'),
    initrds: [...layout.ucode.map((u) => pxe(u, ucodeName(u))), pxe(layout.initramfs, 'sysrcd-sysresccd.img')],
    web: [
      { from: layout.rootImage, to: join(root, 'airootfs.sfs') },
      { from: layout.rootChecksum, to: join(root, 'airootfs.sha512') },
    ],
    check: { member: layout.rootImage, sums: layout.rootChecksum, algo: 'sha512' },
  };
}

export async function extractIso(isoPath: string, o: ExtractIsoOptions): Promise<InstallerEnvArtifact> {
  // The user knows the ISO by the spec's path or URL; the cache copy's name means nothing to them.
  const named = o.source && o.source !== isoPath ? `${o.source} (cached as ${isoPath})` : isoPath;
  const layout = await readIsoLayout(isoPath, named);
  const plan = placements(layout, o);
  o.log.info(`${named}: ${layout.kind === 'sysrcd-legacy' ? 'legacy SystemRescueCd (4.x/5.x)' : 'modern SystemRescue (6+)'} layout`);

  const staging = join(o.workDir, 'extract-iso');
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  const all = [plan.kernel, ...plan.initrds, ...plan.web];
  const members = [...all.map((p) => p.from), ...(layout.versionFile ? [layout.versionFile] : [])];
  const staged = (isoMember: string) => join(staging, isoMember);
  await extractMembers(isoPath, members, staging);

  await verifyMember(staged(plan.check.member), plan.check.member, staged(plan.check.sums), plan.check.sums, plan.check.algo, named);
  const version = layout.versionFile ? (await readFile(staged(layout.versionFile), 'utf8')).split('\n')[0]!.trim() || 'unknown' : 'unknown';

  const distDir = o.distDir ?? dirname(o.pxeDir);
  const files: string[] = [];
  for (const p of all) {
    await mkdir(dirname(p.to), { recursive: true });
    await moveInto(staged(p.from), p.to);
    files.push(relative(distDir, p.to));
  }
  await rm(staging, { recursive: true, force: true });
  o.log.info(`SystemRescue ${version}: ${files.length} files placed, ${basename(plan.check.sums)} verified`);
  return {
    kind: plan.kind,
    version,
    kernel: relative(o.pxeDir, plan.kernel.to),
    initrds: plan.initrds.map((p) => relative(o.pxeDir, p.to)),
    files,
  };
}

async function extractMembers(iso: string, members: string[], dest: string): Promise<void> {
  // One xorriso run, one "-extract <iso path> <disk path>" pair per member; -osirrox on allows
  // copying out of the image at all.
  const argv = ['xorriso', '-osirrox', 'on', '-indev', iso];
  for (const m of members) argv.push('-extract', m, join(dest, m));
  try {
    await run(argv);
  } catch (err) {
    if (err instanceof CommandError && err.exitCode === 127)
      throw new HostToolError("Could not find 'xorriso', which is required to extract the SystemRescue ISO without mounting it (Debian: xorriso, Arch: libisoburn)");
    throw err;
  }
  // ISO 9660 files come out read-only; dist/ files get ordinary modes.
  for (const m of members) await chmod(join(dest, m), 0o644);
}

/** Checks a member against a sha512sum/md5sum-format file ("<hex>  <name>" lines). */
async function verifyMember(file: string, member: string, sumsFile: string, sumsMember: string, algo: DigestAlgo, iso: string): Promise<void> {
  const name = basename(member);
  const lines = (await readFile(sumsFile, 'utf8')).split('\n').map((l) => l.trim()).filter(Boolean);
  const entries = lines.map((l) => l.match(/^([0-9a-fA-F]+)(?:\s+\*?(.+))?$/)).filter((m): m is RegExpMatchArray => m !== null);
  const entry = entries.find((m) => m[2] !== undefined && basename(m[2]) === name) ?? (entries.length === 1 && entries[0]![2] === undefined ? entries[0] : undefined);
  if (!entry || !isHexDigest(algo, entry[1]!))
    throw new StageError(STAGE, `${iso}: ${sumsMember} has no ${algo} entry for ${name} (got ${JSON.stringify(lines.slice(0, 3).join(' | '))})`);
  const expected = entry[1]!.toLowerCase();
  const actual = (await hashFile(file, [algo])).hex[algo];
  if (actual !== expected)
    throw new StageError(
      STAGE,
      `${iso}: ${member} does not match ${sumsMember}\n  expected ${algo}: ${expected}\n  actual   ${algo}: ${actual}\n  hint: the ISO is damaged or was altered; nothing was placed in dist/`,
    );
}

async function moveInto(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await copyFile(from, to);
    await rm(from, { force: true });
  }
}
