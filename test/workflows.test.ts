/**
 * The GitHub workflows: they parse, every job has a timeout, checkouts keep no credentials, actions are
 * pinned to commits, and every npm script and file they run exists. The release summary script runs here
 * on a small tree, writing real GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { checksumTree } from '../build/stages/checksum-tree.ts';
import { sha256File } from '../build/lib/hash.ts';
import { writeServedTree, writeSpec } from './helpers/served-tree.ts';
import { workspace } from './helpers/workspace.ts';
import { imagePath } from '../build/layout.ts';

const DIR = '.github/workflows';
const files = readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f));
const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> };

interface Step {
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
}
interface Job {
  'timeout-minutes'?: number;
  steps: Step[];
}

describe.each(files)('%s', (file) => {
  const wf = parse(readFileSync(join(DIR, file), 'utf8')) as { on: unknown; jobs: Record<string, Job> };
  const steps = Object.values(wf.jobs).flatMap((j) => j.steps);
  const runs = steps.flatMap((s) => (s.run ? [s.run] : []));

  it('parses and has jobs with steps', () => {
    expect(wf.on).toBeTruthy();
    expect(Object.keys(wf.jobs).length).toBeGreaterThan(0);
    for (const j of Object.values(wf.jobs)) expect(j.steps.length).toBeGreaterThan(0);
  });

  it('every job has a timeout', () => {
    for (const [name, j] of Object.entries(wf.jobs)) expect(j['timeout-minutes'], name).toBeGreaterThan(0);
  });

  it('checkouts keep no credentials; actions are pinned to a commit', () => {
    for (const s of steps.filter((x) => x.uses)) {
      expect(s.uses).toMatch(/^[\w.-]+\/[\w.-]+@[0-9a-f]{40}$/);
      if (s.uses!.startsWith('actions/checkout@')) expect(s.with?.['persist-credentials']).toBe(false);
    }
    expect(steps.some((s) => s.uses?.startsWith('actions/checkout@'))).toBe(true);
  });

  it('names only npm scripts and files that exist', () => {
    const text = runs.join('\n');
    const scripts = [...text.matchAll(/npm run ([\w:-]+)/g)].map((m) => m[1]!);
    for (const s of scripts) expect(pkg.scripts, `npm run ${s}`).toHaveProperty([s]);
    if (/\bnpm test\b/.test(text)) expect(pkg.scripts).toHaveProperty(['test']);
    const paths = [...text.matchAll(/(?:bash|tsx|node)\s+((?:scripts|build|bin)\/[\w./-]+)/g)].map((m) => m[1]!);
    for (const p of paths) expect(existsSync(p), p).toBe(true);
  });
});

describe('the workflows together', () => {
  it('ci runs setup, npm ci, npm test and npm run test:e2e; release builds with npm run build:image', () => {
    const ci = readFileSync(join(DIR, 'ci.yml'), 'utf8');
    for (const s of ['bash scripts/setup.sh', 'npm ci', 'npm test', 'npm run test:e2e']) expect(ci).toContain(s);
    const rel = parse(readFileSync(join(DIR, 'release.yml'), 'utf8'));
    expect(rel.on.push.tags).toEqual(['v*']);
    expect(JSON.stringify(rel)).toContain('npm run build:image');
    expect(rel.jobs.release.outputs['image-digest']).toContain('steps.summary.outputs.image-digest');
  });

  it('release-summary writes outputs, a summary table and the asset list', async () => {
    const ws = await workspace('pc-release-');
    try {
      const { plan } = await writeSpec(ws.dir, { count: 1 });
      const dist = join(ws.dir, 'dist');
      await writeServedTree(dist, plan);
      const sha = await sha256File(join(dist, imagePath('os.tar.zst')));
      await checksumTree(dist, { portacluster: '1', specHash: plan.specHash, sourceDateEpoch: 0, tools: {}, artifacts: { image: { file: 'images/os.tar.zst', sha256: sha, size: 9 }, os: { kernel: 'pxe/k', initramfs: 'pxe/i', kernelVersion: '6.1' } } });
      const output = join(ws.dir, 'output');
      const summary = join(ws.dir, 'summary.md');
      await writeFile(output, '');
      await writeFile(summary, '');
      const list = join(ws.dir, 'assets.txt');
      const code = await new Promise((done) =>
        spawn(process.execPath, ['--import', 'tsx', resolve('scripts/release-summary.ts'), dist, list], { env: { ...process.env, GITHUB_OUTPUT: output, GITHUB_STEP_SUMMARY: summary }, stdio: 'inherit' }).on('close', done),
      );
      expect(code).toBe(0);
      expect(await readFile(output, 'utf8')).toContain(`sha256:${sha}`);
      expect(await readFile(summary, 'utf8')).toMatch(/<table>.*images\/os\.tar\.zst/s);
      const assets = (await readFile(list, 'utf8')).trim().split('\n');
      expect(assets.map((a) => a.slice(dist.length + 1))).toEqual(['images/os.tar.zst', 'pxe/pxelinux.0', 'SHA256SUMS', 'manifest.json']);
      for (const a of assets) expect(existsSync(a)).toBe(true);
    } finally {
      await ws.cleanup();
    }
  });
});
