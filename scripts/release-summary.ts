/**
 * Release step: reads dist/manifest.json, writes the Actions step summary (a table of the assets), sets the
 * outputs image-digest and spec-hash, and lists the asset files (one per line) for the upload step and
 * release-notes.md beside them. Outside Actions it prints the same table.
 * Usage: node --import tsx scripts/release-summary.ts DIST ASSET_LIST
 */
import * as core from '@actions/core';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

interface Manifest {
  specHash: string;
  artifacts: {
    image?: { file: string; sha256: string; size: number };
    os?: { kernel: string; initramfs: string; kernelVersion?: string };
    installerEnv?: Record<string, unknown>;
  };
  files: { path: string; size: number; sha256: string }[];
}

export function releaseAssets(m: Manifest): string[] {
  const boot = m.files.map((f) => f.path).filter((p) => /^pxe\/[^/]+$/.test(p) && !p.endsWith('.c32'));
  return [...(m.artifacts.image ? [m.artifacts.image.file] : []), ...boot, 'SHA256SUMS', 'manifest.json'];
}

async function main(dist: string, listFile: string): Promise<void> {
  const manifest = JSON.parse(await readFile(join(dist, 'manifest.json'), 'utf8')) as Manifest;
  const image = manifest.artifacts.image;
  if (!image) throw new Error(`${dist}/manifest.json names no image artifact`);
  const assets = releaseAssets(manifest);
  const byPath = new Map(manifest.files.map((f) => [f.path, f]));
  const rows = await Promise.all(
    assets.map(async (p) => {
      const f = byPath.get(p);
      const size = f?.size ?? (await stat(join(dist, p))).size;
      return [p, `${(size / 1048576).toFixed(1)} MiB`, f ? f.sha256.slice(0, 16) + '…' : '(listed in SHA256SUMS)'];
    }),
  );
  const digest = `sha256:${image.sha256}`;
  core.setOutput('image-digest', digest);
  core.setOutput('spec-hash', manifest.specHash);
  await writeFile(listFile, assets.map((p) => join(dist, p)).join('\n') + '\n');
  await writeFile(
    join(listFile, '..', 'release-notes.md'),
    [`Golden image \`${image.file}\` (${digest}), kernel ${manifest.artifacts.os?.kernelVersion ?? '?'}, spec ${manifest.specHash.slice(0, 16)}.`, '', 'Check a download with `sha256sum -c SHA256SUMS --ignore-missing`.', ''].join('\n'),
  );
  if (process.env.GITHUB_STEP_SUMMARY) {
    await core.summary
      .addHeading('portacluster release', 2)
      .addRaw(`Image digest: <code>${digest}</code> · spec <code>${manifest.specHash.slice(0, 16)}</code>`, true)
      .addTable([[{ data: 'Asset', header: true }, { data: 'Size', header: true }, { data: 'SHA-256', header: true }], ...rows])
      .write();
  } else {
    for (const r of rows) process.stdout.write(r.join('\t') + '\n');
    process.stdout.write(`image-digest=${digest}\n`);
  }
}

const [dist, list] = process.argv.slice(2);
if (!dist || !list) {
  process.stderr.write('usage: release-summary.ts DIST ASSET_LIST\n');
  process.exitCode = 2;
} else {
  main(dist, list).catch((e: Error) => {
    core.setFailed(e.message);
    process.exitCode = 1;
  });
}
