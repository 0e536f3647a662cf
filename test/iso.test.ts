import { copyFile, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectLayout, listIsoFiles, readIsoLayout, unquoteShellWord } from '../build/iso/layout.ts';
import { StageError } from '../build/lib/errors.ts';
import { memoryLogger } from '../build/lib/log.ts';
import { run } from '../build/lib/run.ts';
import { installerBootEntry } from '../build/render/installer-append.ts';
import { extractIso } from '../build/stages/extract-iso.ts';
import { fetchIso } from '../build/stages/fetch-iso.ts';
import { startFileServer } from './helpers/file-server.ts';
import { makeSysrcdIso, type MadeIso } from './helpers/make-iso.ts';
import { workspace } from './helpers/workspace.ts';

let ws: Awaited<ReturnType<typeof workspace>>;
let legacy: MadeIso;
let modern: MadeIso;

beforeAll(async () => {
  ws = await workspace('pc-iso-');
  legacy = await makeSysrcdIso(ws.dir, 'legacy');
  modern = await makeSysrcdIso(ws.dir, 'modern');
});
afterAll(() => ws.cleanup());

async function extractTo(name: string, iso: string) {
  const dist = join(ws.dir, name, 'dist');
  const log = memoryLogger();
  const artifact = await extractIso(iso, { pxeDir: join(dist, 'pxe'), sysrcdDir: join(dist, 'sysrcd'), workDir: join(ws.dir, name, 'work'), log });
  return { dist, artifact, log };
}

async function listTree(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (e.isDirectory()) out.push(...(await listTree(join(dir, e.name), `${prefix}${e.name}/`)));
    else out.push(prefix + e.name);
  }
  return out.sort();
}

describe('layout detection', () => {
  it('lists the ISO files with xorriso, without mounting', async () => {
    const files = await listIsoFiles(legacy.path);
    expect(files.sort()).toEqual(Object.keys(legacy.contents).sort());
  });

  it('detects legacy and modern from contents, whatever the file name', async () => {
    const misleading = join(ws.dir, 'systemrescue-12.00-amd64.iso');
    await copyFile(legacy.path, misleading);
    expect(await readIsoLayout(misleading)).toEqual({
      kind: 'sysrcd-legacy',
      kernel: '/isolinux/rescue64',
      initrd: '/isolinux/initram.igz',
      rootImage: '/sysrcd.dat',
      rootChecksum: '/sysrcd.md5',
      versionFile: '/version',
      otherKernels: ['/isolinux/rescue32', '/isolinux/altker64'],
    });
    expect(await readIsoLayout(modern.path)).toEqual({
      kind: 'sysrcd-modern',
      kernel: '/sysresccd/boot/x86_64/vmlinuz',
      initramfs: '/sysresccd/boot/x86_64/sysresccd.img',
      ucode: ['/sysresccd/boot/intel_ucode.img', '/sysresccd/boot/amd_ucode.img'],
      rootImage: '/sysresccd/x86_64/airootfs.sfs',
      rootChecksum: '/sysresccd/x86_64/airootfs.sha512',
      versionFile: '/sysresccd/VERSION',
    });
  });

  it('matches plain ISO 9660 (upper-case) names and keeps their spelling', () => {
    const layout = detectLayout(['/ISOLINUX/RESCUE64', '/ISOLINUX/INITRAM.IGZ', '/SYSRCD.DAT;1', '/SYSRCD.MD5']);
    expect(layout).toMatchObject({ kind: 'sysrcd-legacy', kernel: '/ISOLINUX/RESCUE64', rootImage: '/SYSRCD.DAT;1' });
  });

  it('refuses an ISO that is neither, listing what it found', async () => {
    const src = join(ws.dir, 'other-src');
    await run(['mkdir', '-p', join(src, 'casper'), join(src, 'boot/grub')]);
    await run(['touch', join(src, 'casper/vmlinuz'), join(src, 'boot/grub/grub.cfg'), join(src, 'md5sum.txt')]);
    const iso = join(ws.dir, 'sysrcd-looking-name.iso');
    await run(['xorriso', '-as', 'mkisofs', '-quiet', '-R', '-o', iso, src]);
    const err = (await readIsoLayout(iso).catch((e: unknown) => e)) as StageError;
    expect(err).toBeInstanceOf(StageError);
    expect(err.message).toContain('is neither a legacy SystemRescueCd (4.x/5.x) nor a modern SystemRescue (6+) ISO');
    expect(err.message).toContain('found at the top level: boot, casper, md5sum.txt');
    expect(err.message).toContain('missing for modern: /sysresccd/boot/x86_64/vmlinuz');
    expect(err.message).toContain("give the SystemRescue ISO itself, not another distribution's");
  });

  it('says when an ISO is an incomplete modern one', () => {
    expect(() => detectLayout(['/sysresccd/boot/x86_64/vmlinuz', '/sysresccd/boot/x86_64/sysresccd.img', '/sysresccd/x86_64/airootfs.sfs'])).toThrow(
      /missing for modern: \/sysresccd\/x86_64\/airootfs\.sha512\n.*\n  hint: it has some modern SystemRescue files/,
    );
  });

  it('refuses a file that is not an ISO', async () => {
    const notIso = join(ws.dir, 'not-an-iso.iso');
    await run(['sh', '-c', `head -c 70000 /dev/zero > '${notIso}'`]);
    await expect(readIsoLayout(notIso)).rejects.toThrow(/cannot read .*not-an-iso\.iso as an ISO 9660 image: xorriso finds no files in it \(media status: is blank\)/);
  });

  it('undoes xorriso quoting', () => {
    expect(unquoteShellWord(`'/a/we ird'"'"'name'`)).toBe("/a/we ird'name");
    expect(unquoteShellWord(`'/plain'`)).toBe('/plain');
  });
});

describe('extraction', () => {
  it('legacy: places kernel, initramfs and sysrcd.dat, verified against sysrcd.md5', async () => {
    const { dist, artifact } = await extractTo('legacy', legacy.path);
    expect(artifact).toEqual({
      kind: 'sysrcd-legacy',
      version: '5.3.2',
      kernel: 'sysrcd-kernel',
      initrds: ['sysrcd-initram.igz'],
      files: ['pxe/sysrcd-kernel', 'pxe/sysrcd-initram.igz', 'sysrcd/sysrcd.dat', 'sysrcd/sysrcd.md5'],
    });
    expect(await listTree(dist)).toEqual([...artifact.files].sort());
    expect(await readFile(join(dist, 'pxe/sysrcd-kernel'), 'utf8')).toBe(legacy.contents['/isolinux/rescue64']);
    expect(await readFile(join(dist, 'sysrcd/sysrcd.dat'), 'utf8')).toBe(legacy.contents['/sysrcd.dat']);
    // The web server must be able to read what it serves.
    expect((await stat(join(dist, 'sysrcd/sysrcd.dat'))).mode & 0o777).toBe(0o644);
    // Independent check of the placed root image with the real tool.
    await run(['md5sum', '--check', '--strict', 'sysrcd.md5'], { cwd: join(dist, 'sysrcd') });
  });

  it('modern: places microcode + initramfs in load order and airootfs where archiso_http_srv looks', async () => {
    const { dist, artifact } = await extractTo('modern', modern.path);
    expect(artifact).toEqual({
      kind: 'sysrcd-modern',
      version: '12.00',
      kernel: 'sysrcd-vmlinuz',
      initrds: ['sysrcd-intel-ucode.img', 'sysrcd-amd-ucode.img', 'sysrcd-sysresccd.img'],
      files: [
        'pxe/sysrcd-vmlinuz',
        'pxe/sysrcd-intel-ucode.img',
        'pxe/sysrcd-amd-ucode.img',
        'pxe/sysrcd-sysresccd.img',
        'sysrcd/sysresccd/x86_64/airootfs.sfs',
        'sysrcd/sysresccd/x86_64/airootfs.sha512',
      ],
    });
    expect(await listTree(dist)).toEqual([...artifact.files].sort());
    expect(await readFile(join(dist, 'pxe/sysrcd-intel-ucode.img'), 'utf8')).toBe(modern.contents['/sysresccd/boot/intel_ucode.img']);
    // What archiso does with the `checksum` option, from the directory it downloaded into.
    await run(['sha512sum', '--check', '--strict', 'airootfs.sha512'], { cwd: join(dist, 'sysrcd/sysresccd/x86_64') });
  });

  for (const generation of ['legacy', 'modern'] as const) {
    it(`${generation}: a corrupted root image fails naming the file and both digests, placing nothing`, async () => {
      const bad = await makeSysrcdIso(join(ws.dir), generation, { corrupt: true });
      const dist = join(ws.dir, `corrupt-${generation}`, 'dist');
      const err = (await extractIso(bad.path, { pxeDir: join(dist, 'pxe'), sysrcdDir: join(dist, 'sysrcd'), workDir: join(ws.dir, 'cw'), log: memoryLogger() }).catch(
        (e: unknown) => e,
      )) as StageError;
      expect(err).toBeInstanceOf(StageError);
      const [member, sums, algo] = generation === 'legacy' ? ['/sysrcd.dat', '/sysrcd.md5', 'md5'] : ['/sysresccd/x86_64/airootfs.sfs', '/sysresccd/x86_64/airootfs.sha512', 'sha512'];
      expect(err.message).toContain(`${member} does not match ${sums}`);
      const expected = (bad.contents[sums] ?? '').split(' ')[0]!;
      expect(err.message).toContain(`expected ${algo}: ${expected}`);
      expect(err.message).toMatch(new RegExp(`actual   ${algo}: (?!${expected})[0-9a-f]+`));
      expect(await listTree(dist)).toEqual([]);
    });
  }

  it('fetch → extract → boot entry, end to end from a local ISO path', async () => {
    const log = memoryLogger();
    const cached = await fetchIso({ source: { path: modern.path }, digests: [{ algo: 'sha256', hex: modern.sha256 }] }, { cacheDir: join(ws.dir, 'e2e-cache'), log });
    expect(cached).toBe(join(ws.dir, 'e2e-cache', 'by-sha256', modern.sha256));
    const { artifact } = await extractTo('e2e', cached);
    const entry = installerBootEntry(artifact, { httpBase: 'http://192.168.10.10', keymap: 'us', profile: 'installer' });
    expect(entry).toEqual({
      kernel: 'sysrcd-vmlinuz',
      initrds: ['sysrcd-intel-ucode.img', 'sysrcd-amd-ucode.img', 'sysrcd-sysresccd.img'],
      append: 'archisobasedir=sysresccd ip=dhcp archiso_http_srv=http://192.168.10.10/sysrcd/ checksum setkmap=us ar_source=http://192.168.10.10/installer/ ar_nowait',
      sysappend: 3,
    });
  });

  it('fetch over HTTP → extract → boot entry, end to end for legacy', async () => {
    const server = await startFileServer(await readFile(legacy.path));
    try {
      const log = memoryLogger();
      const cached = await fetchIso({ source: { url: server.url }, digests: [{ algo: 'sha256', hex: legacy.sha256 }] }, { cacheDir: join(ws.dir, 'http-cache'), log });
      const { artifact } = await extractTo('http-legacy', cached);
      expect(installerBootEntry(artifact, { httpBase: 'http://10.0.0.1', keymap: 'de', profile: 'rescue', serialConsole: 'ttyS1,9600' })).toEqual({
        kernel: 'sysrcd-kernel',
        initrds: ['sysrcd-initram.igz'],
        append: 'docache dodhcp setkmap=de netboot=http://10.0.0.1/sysrcd/sysrcd.dat ar_source=http://10.0.0.1/rescue/ ar_nowait console=tty0 console=ttyS1,9600',
      });
      expect(log.lines.join('\n')).toContain(`ISO verified and cached: ${cached} (sha256:${legacy.sha256})`);
    } finally {
      await server.close();
    }
  });

  it('the helper builds the same ISO twice (reproducible for golden tests)', async () => {
    await run(['mkdir', '-p', join(ws.dir, 'again')]);
    const again = await makeSysrcdIso(join(ws.dir, 'again'), 'legacy');
    expect(again.sha256).toBe(legacy.sha256);
  });
});
