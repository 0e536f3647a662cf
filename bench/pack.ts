/**
 * `node --import tsx bench/pack.ts [tree]`: packImage (deterministic, hashed while streaming) against the
 * floor of plain `tar --numeric-owner --xattrs -cf - … | zstd -T0 -3` on the same tree in the same run,
 * as a throughput ratio (goal ≥ 0.95), plus tarball size and the cost of a packed-tarball cache hit; and
 * packFsImage (the image-mode ext4 image: mke2fs -d, debugfs, e2fsck -fn, zstd) against the same floor,
 * as a time ratio, with its compressed and unpacked sizes.
 * Default tree: a Debian rootfs from the build cache if one exists, else a synthetic tree.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { memoryLogger } from '../build/lib/log.ts';
import { capture, run } from '../build/lib/run.ts';
import { packImage, packImageCached } from '../build/stages/pack-image.ts';
import { ImageSpecSchema } from '../build/spec/schema.ts';
import { packFsImage } from '../build/stages/pack-fsimage.ts';
import { recordRatio } from './lib/ratios.ts';

// The level a spec gets when it names none.
const ZSTD_LEVEL: number = ImageSpecSchema.properties.zstdLevel.default;

const ROUNDS = 3;

async function findCachedDebianTree(): Promise<string | null> {
  const caches = [process.env.PORTACLUSTER_CACHE, '.cache/portacluster'].filter((c): c is string => Boolean(c));
  for (const c of caches) {
    for (const area of [join(c, 'images', 'rootfs'), join(c, 'rootfs')]) {
      const keys = await readdir(area).catch(() => [] as string[]);
      const deb = keys.find((k) => k.startsWith('debian-'));
      if (deb) return resolve(area, deb, 'rootfs');
    }
  }
  return null;
}

/** 20k files, ~330 MB, half compressible text, half random: roughly the shape of a small OS. */
async function syntheticTree(dir: string): Promise<string> {
  const root = join(dir, 'synthetic');
  for (let d = 0; d < 200; d++) {
    const sub = join(root, 'usr/lib', `pkg${d}`);
    await mkdir(sub, { recursive: true });
    for (let f = 0; f < 100; f++) {
      const size = f % 10 === 0 ? 150_000 : 2_000;
      const body = f % 2 ? randomBytes(size) : `line ${d}/${f}\n`.repeat(size / 10);
      await writeFile(join(sub, `file${f}`), body);
    }
    await symlink(`pkg${d}/file0`, join(root, 'usr/lib', `link${d}`));
  }
  return root;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mb = (n: number) => (n / 1e6).toFixed(1);

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t0 = performance.now();
  const r = await fn();
  return [(performance.now() - t0) / 1000, r];
}

async function main(): Promise<void> {
  const scratch = await mkdtemp(join(tmpdir(), 'pc-bench-pack-'));
  try {
    const arg = process.argv[2];
    const tree = arg ? resolve(arg) : ((await findCachedDebianTree()) ?? (await syntheticTree(scratch)));
    const treeBytes = Number((await capture(['du', '--summarize', '--bytes', tree])).split(/\s/)[0]);
    const log = memoryLogger();
    const epoch = 1_700_000_000;

    const ours: number[] = [];
    const plain: number[] = [];
    let packedSize = 0;
    let plainSize = 0;
    const fsTimes: number[] = [];
    let fs = { size: 0, imageBytes: 0 };
    for (let i = 0; i < ROUNDS; i++) {
      const out = join(scratch, `o${i}`);
      // Each timed run starts with nothing dirty to write back: the previous one's output (the fs image's
      // 885 MB above all) would otherwise be flushed during whichever run comes next.
      await run(['sync']);
      const [t, p] = await timed(() => packImage(tree, { outDir: out, name: 'bench', sourceDateEpoch: epoch, zstdLevel: ZSTD_LEVEL, log }));
      ours.push(t);
      packedSize = p.size;
      await rm(out, { recursive: true });
      const file = join(scratch, `plain${i}.tar.zst`);
      await run(['sync']);
      const [tp] = await timed(() =>
        run(['sh', '-c', 'tar --numeric-owner --xattrs -C "$1" -cf - . | zstd -T0 -"$2" -q -o "$3"', 'sh', tree, String(ZSTD_LEVEL), file]),
      );
      plain.push(tp);
      plainSize = (await stat(file)).size;
      await rm(file);
      const fsOut = join(scratch, `fs${i}`);
      await run(['sync']);
      const [tf, f] = await timed(() => packFsImage(tree, { outDir: fsOut, name: 'bench', label: 'root', contentKey: 'bench', sourceDateEpoch: epoch, zstdLevel: ZSTD_LEVEL, log }));
      fsTimes.push(tf);
      fs = f;
      await rm(fsOut, { recursive: true });
    }

    const cacheDir = join(scratch, 'cache');
    const image = { rootDir: tree, cacheKey: 'bench-tree', fromCache: true };
    const opts = { cacheDir, name: 'bench', sourceDateEpoch: epoch, zstdLevel: ZSTD_LEVEL, log, outDir: join(scratch, 'dist') };
    const [miss] = await timed(() => packImageCached(image, opts));
    const [hit, hitResult] = await timed(() => packImageCached(image, opts));
    if (!hitResult.fromCache) throw new Error('second packImageCached was not a cache hit');

    const rows: Array<[string, string]> = [
      ['tree', `${tree} (${mb(treeBytes)} MB)`],
      [`packImage, zstd -${ZSTD_LEVEL} (median of ${ROUNDS})`, `${median(ours).toFixed(2)} s, ${mb(treeBytes / median(ours))} MB/s, ${mb(packedSize)} MB`],
      ['plain tar | zstd -T0 (median)', `${median(plain).toFixed(2)} s, ${mb(treeBytes / median(plain))} MB/s, ${mb(plainSize)} MB`],
      ['throughput ratio (goal >= 0.95)', (median(plain) / median(ours)).toFixed(3)],
      ['packImageCached: miss / hit', `${miss.toFixed(2)} s / ${hit.toFixed(3)} s`],
      [`packFsImage, zstd -${ZSTD_LEVEL} (median)`, `${median(fsTimes).toFixed(2)} s, ${mb(fs.size)} MB (${mb(fs.imageBytes)} MB unpacked)`],
      ['fs image time / plain tar | zstd time', (median(fsTimes) / median(plain)).toFixed(2)],
      ['fs image size / tarball size', (fs.size / packedSize).toFixed(3)],
    ];
    const w = Math.max(...rows.map(([k]) => k.length));
    for (const [k, v] of rows) console.log(`${k.padEnd(w)}  ${v}`);
    recordRatio({
      figure: 'golden tarball pack vs tar | zstd -T0 (throughput)',
      value: median(plain) / median(ours),
      goal: { op: '>=', value: 0.95 },
      detail: `packImage ${median(ours).toFixed(2)} s / tar | zstd -T0 -${ZSTD_LEVEL} ${median(plain).toFixed(2)} s, ${mb(treeBytes)} MB tree, median of ${ROUNDS}`,
    });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

await main();
