/**
 * deploy to a local dir and over ssh to an sshd on 127.0.0.1: release dirs, the atomic switch, node links
 * kept, checksums verified on the destination, an interrupted rsync leaving the old tree served.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, lstat, mkdir, readFile, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CommandError } from '../build/lib/errors.ts';
import { run } from '../build/lib/run.ts';
import { deploy } from '../build/lifecycle/deploy.ts';
import { verifyTree } from '../build/stages/checksum-tree.ts';
import { readProfiles, switchNodes } from '../build/lifecycle/links.ts';
import type { Plan } from '../build/plan/plan.ts';
import { writeServedTree, writeSpec } from './helpers/served-tree.ts';
import { startSshd, type Sshd } from './helpers/sshd.ts';
import { workspace } from './helpers/workspace.ts';
import { imagePath, IPXE_DIR, ipxeNodeFile, PXELINUX_DIR, runPath } from '../build/layout.ts';
import { openRuns, runRecordFile } from '../build/lifecycle/runs.ts';

let ws: Awaited<ReturnType<typeof workspace>>;
let plan: Plan;
let specFile: string;
let v1: string;
let v2: string;
let sshd: Sshd;

beforeAll(async () => {
  ws = await workspace('pc-deploy-');
  ({ plan, file: specFile } = await writeSpec(ws.dir, { count: 3 }));
  v1 = join(ws.dir, 'dist-v1');
  v2 = join(ws.dir, 'dist-v2');
  await writeServedTree(v1, plan, { version: 'v1', imageBytes: 8 << 20 });
  await writeServedTree(v2, plan, { version: 'v2' });
  // v2 keeps v1's image, so --link-dest makes it a hard link.
  // With its mtime, as the build clamps every mtime: --link-dest links only files whose attributes match.
  await cp(join(v1, imagePath('os.tar.zst')), join(v2, imagePath('os.tar.zst')), { preserveTimestamps: true });
  await rebuildSums(v2);
  sshd = await startSshd(join(ws.dir, 'ssh'));
});
afterAll(async () => {
  await sshd?.stop();
  await ws?.cleanup();
});

async function rebuildSums(dir: string) {
  const { checksumTree } = await import('../build/stages/checksum-tree.ts');
  await checksumTree(dir, { portacluster: '1', specHash: plan.specHash, sourceDateEpoch: 0, tools: {}, artifacts: {} });
}

const served = (dest: string, path: string) => readFile(join(dest, path), 'utf8');

describe('deploy to a local directory', () => {
  let dest: string;
  beforeEach(async () => {
    dest = join(ws.dir, `srv-${Math.random().toString(36).slice(2, 8)}`, 'public');
    await mkdir(dest, { recursive: true });
  });

  it('migrates a plain directory, publishes releases, keeps node links, verifies, prunes', async () => {
    // The original setup: /srv/public copied by hand, node1 switched to the OS by hand.
    await cp(v1, dest, { recursive: true, verbatimSymlinks: true });
    await switchNodes(plan.nodes.slice(0, 1), 'arch-linux', { root: dest });

    const dry = await deploy({ from: v2, dest, dryRun: true });
    expect(dry.changes.join('\n')).toContain('installer/autorun');
    expect(dry.changes.join('\n')).not.toContain('01-c0');
    expect(await served(dest, 'installer/autorun')).toContain('v1');

    const t0 = performance.now();
    const r = await deploy({ from: v2, dest });
    console.log(`local deploy (migration, 8 MiB tree): ${(performance.now() - t0).toFixed(0)} ms`);
    expect(r.migrated).toMatch(/public\.releases\/19700101T000000Z-migrated-/);
    expect((await lstat(dest)).isSymbolicLink()).toBe(true);
    expect(await readlink(dest)).toMatch(/^public\.releases\/\d{8}T\d+Z-[0-9a-f]{12}$/);
    expect(await served(dest, 'installer/autorun')).toContain('v2');
    expect(r.checked).toBe(11);
    // node1 stays on its OS although dist/ says installer.
    expect([...(await readProfiles(plan.nodes, { root: dest })).values()]).toEqual(['arch-linux', 'installer', 'installer']);
    expect(await readlink(join(dest, IPXE_DIR, ipxeNodeFile(plan.nodes[0]!.mac)))).toBe('arch-linux.ipxe');
    expect(r.keptLinks).toContain(`${PXELINUX_DIR}/${plan.nodes[0]!.pxeFile} -> arch-linux`);
    await run(['sha256sum', '--quiet', '-c', 'SHA256SUMS'], { cwd: dest });

    // node2 is mid-reimage: its run file (its install nonce) lives in the served tree, not in dist/.
    await openRuns({ stateFile: join(`${dest}.state`, 'state.json'), root: dest, nodes: [plan.nodes[1]!], action: 'reimage', profile: 'installer' });
    const runFile = await readFile(join(dest, runPath(plan.nodes[1]!.mac)), 'utf8');
    // Second deploy: the unchanged image is a hard link to the previous release's.
    const r2 = await deploy({ from: v2, dest, keep: 2 });
    // The run file is carried into the new release, and the live tree still verifies.
    expect(await readFile(join(dest, runPath(plan.nodes[1]!.mac)), 'utf8')).toBe(runFile);
    expect(await verifyTree(dest)).toMatchObject({ ok: true, problems: [] });
    expect((await stat(join(r2.release!, imagePath('os.tar.zst')))).nlink).toBeGreaterThan(1);
    expect(r2.pruned).toEqual([r.migrated!.split('/').pop()]);
    expect((await readdir(`${dest}.releases`)).sort()).toEqual([r.release!, r2.release!].map((p) => p.split('/').pop()).sort());
  });

  it("a new image does not pull the old one from under a node mid-install: it is carried for one release", async () => {
    const trees: Record<string, string> = {};
    for (const v of ['va', 'vb', 'vc']) {
      const dir = join(ws.dir, `dist-${v}`);
      await writeServedTree(dir, plan, { version: v });
      // As the build names them: <name>-<hash>.tar.zst with a sidecar.
      const body = `image ${v}\n`;
      const name = `os-${v}.tar.zst`;
      await rm(join(dir, imagePath('os.tar.zst')));
      await writeFile(join(dir, 'images', name), body);
      await writeFile(join(dir, 'images', `${name}.sha256`), `${createHash('sha256').update(body).digest('hex')}  ${name}\n`);
      await rebuildSums(dir);
      trees[v] = dir;
    }
    await deploy({ from: trees.va!, dest });
    const b = await deploy({ from: trees.vb!, dest });
    // A node that fetched va's autorun still finds va's image, verified by its own sidecar.
    expect(b.carried).toEqual(['os-va.tar.zst', 'os-va.tar.zst.sha256']);
    expect(await served(dest, imagePath('os-va.tar.zst'))).toBe('image va\n');
    await run(['sha256sum', '--quiet', '--strict', '-c', 'os-va.tar.zst.sha256'], { cwd: join(dest, 'images') });
    const v = await verifyTree(dest);
    expect(v).toMatchObject({ ok: true, problems: [], carried: ['images/os-va.tar.zst', 'images/os-va.tar.zst.sha256'] });
    // One release only: the next deploy carries vb's image, not va's again.
    const c = await deploy({ from: trees.vc!, dest });
    expect(c.carried).toEqual(['os-vb.tar.zst', 'os-vb.tar.zst.sha256']);
    expect((await readdir(join(dest, 'images'))).sort()).toEqual(['os-vb.tar.zst', 'os-vb.tar.zst.sha256', 'os-vc.tar.zst', 'os-vc.tar.zst.sha256']);
    // A carried image whose bytes changed is a problem again.
    await writeFile(join(dest, imagePath('os-vb.tar.zst')), 'tampered\n');
    expect((await verifyTree(dest)).problems).toEqual([
      { path: 'images/os-vb.tar.zst', problem: 'not listed in SHA256SUMS' },
      { path: 'images/os-vb.tar.zst.sha256', problem: 'not listed in SHA256SUMS' },
    ]);
  });

  it('an rsync killed midway leaves the old tree served; the next deploy cleans up', async () => {
    await deploy({ from: v2, dest: dest }); // fresh: dest is created as a link
    const before = await readlink(dest);
    // v3 has a new 8 MiB image; at 2 MB/s rsync is still copying it when we kill it.
    const v3 = join(ws.dir, 'dist-v3');
    await writeServedTree(v3, plan, { version: 'v3', imageBytes: 8 << 20 });
    const p = deploy({ from: v3, dest, rsyncArgs: ['--bwlimit=2000'] });
    const rsyncPids = await waitForRsync(dest);
    for (const pid of rsyncPids) process.kill(pid, 'SIGKILL');
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect(await readlink(dest)).toBe(before);
    expect(await served(dest, 'installer/autorun')).toContain('v2');
    await run(['sha256sum', '--quiet', '-c', 'SHA256SUMS'], { cwd: dest });
    expect((await readdir(`${dest}.releases`)).some((n) => n.startsWith('.incoming-'))).toBe(true);
    const r = await deploy({ from: v3, dest });
    expect(await served(dest, 'installer/autorun')).toContain('v3');
    expect((await readdir(`${dest}.releases`)).filter((n) => n.startsWith('.'))).toEqual([]);
    expect(r.previous).toMatch(/releases/);
  });

  it('refuses a tree without SHA256SUMS and a mismatching tree publishes nothing', async () => {
    await expect(deploy({ from: ws.dir, dest })).rejects.toThrow(/no SHA256SUMS/);
    const bad = join(ws.dir, 'dist-bad');
    await cp(v2, bad, { recursive: true, verbatimSymlinks: true });
    await writeFile(join(bad, 'installer/autorun'), 'tampered\n');
    await expect(deploy({ from: bad, dest })).rejects.toThrow(/does not match its SHA256SUMS; nothing was published/);
    expect((await lstat(dest)).isDirectory()).toBe(true); // still the empty plain dir
  });
});

describe('deploy and switch over ssh', () => {
  it('deploys to node0:/path, keeps the live links, verifies there; switches links remotely', async () => {
    const dest = join(ws.dir, 'node0', 'srv', 'public');
    await mkdir(join(ws.dir, 'node0', 'srv'), { recursive: true });
    const target = { host: 'node0', sshConfig: sshd.sshConfig };
    const t0 = performance.now();
    const r1 = await deploy({ from: v1, dest: `node0:${dest}`, sshConfig: sshd.sshConfig });
    console.log(`ssh deploy, fresh 8 MiB tree: ${(performance.now() - t0).toFixed(0)} ms`);
    expect(r1.host).toBe('node0');
    const t1 = performance.now();
    const res = await switchNodes(plan.nodes.slice(1, 2), 'rescue', { root: dest, target });
    console.log(`ssh switch of one node: ${(performance.now() - t1).toFixed(0)} ms`);
    expect(res[0]).toMatchObject({ node: 'node2', from: 'installer', to: 'rescue' });
    expect((await readProfiles(plan.nodes, { root: dest, target })).get('node2')).toBe('rescue');

    const t2 = performance.now();
    const r2 = await deploy({ from: v2, dest: `node0:${dest}`, sshConfig: sshd.sshConfig });
    console.log(`ssh deploy, update (image unchanged): ${(performance.now() - t2).toFixed(0)} ms`);
    expect(r2.checked).toBe(11);
    expect(await served(dest, 'installer/autorun')).toContain('v2');
    expect(await readlink(join(dest, PXELINUX_DIR, plan.nodes[1]!.pxeFile))).toBe('rescue');
    expect((await stat(join(r2.release!, imagePath('os.tar.zst')))).nlink).toBeGreaterThan(1);

    // The CLI, with unknown node over ssh: exit 2, nothing switched.
    const bad = await cli(['normal', 'node2', 'node7', '--config', specFile, '--ssh', 'node0', '--ssh-config', sshd.sshConfig, '--root', dest]);
    expect(bad.code).toBe(2);
    const ok = await cli(['normal', 'node2', '--config', specFile, '--ssh', 'node0', '--ssh-config', sshd.sshConfig, '--root', dest]);
    expect(ok.code).toBe(0);
    expect(await readlink(join(dest, PXELINUX_DIR, plan.nodes[1]!.pxeFile))).toBe('arch-linux');
    // reimage over ssh opens the run on node0: its record (0600) beside node0's state, its run file in the tree.
    const stateFile = join(ws.dir, 'node0', 'state', 'state.json');
    const re = await cli(['reimage', 'node3', '--config', specFile, '--ssh', 'node0', '--ssh-config', sshd.sshConfig, '--root', dest, '--state', stateFile, '--json']);
    expect(re.code).toBe(0);
    const runId = JSON.parse(re.stdout).runs.node3 as string;
    const rec = JSON.parse(await readFile(runRecordFile(stateFile, 'node3'), 'utf8'));
    expect(rec).toMatchObject({ node: 'node3', run: runId, action: 'reimage', profile: 'installer', old: [] });
    expect((await stat(runRecordFile(stateFile, 'node3'))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(dest, runPath(plan.nodes[2]!.mac)), 'utf8')).toBe(`run=${runId}\nnonce=${rec.nonce}\n`);
    expect(re.stdout).not.toContain(rec.nonce);
    const dep = await cli(['deploy', `node0:${dest}`, '--from', v2, '--ssh-config', sshd.sshConfig, '--json']);
    expect(dep.code).toBe(0);
    expect(JSON.parse(dep.stdout).keptLinks).toContain(`${PXELINUX_DIR}/${plan.nodes[1]!.pxeFile} -> arch-linux`);
  });
});

async function waitForRsync(dest: string): Promise<number[]> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    // Our own rsync processes, found by the unique destination path in their command line.
    const r = await run(['pgrep', '-f', '--', `^rsync .*${dest}`], { nothrow: true });
    const pids = r.stdout.split('\n').filter(Boolean).map(Number);
    const incoming = (await readdir(`${dest}.releases`).catch(() => [])).find((n) => n.startsWith('.incoming-'));
    if (pids.length && incoming) {
      const partial = await run(['du', '-sb', join(`${dest}.releases`, incoming)], { nothrow: true });
      if (Number(partial.stdout.split('\t')[0]) > 100_000) return pids;
    }
    if (Date.now() > deadline) throw new Error('rsync never got going');
    await new Promise((r) => setTimeout(r, 50));
  }
}

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const c = spawn(process.execPath, ['--import', 'tsx', resolve('build/cli/main.ts'), ...args]);
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (b) => (stdout += b));
    c.stderr.on('data', (b) => (stderr += b));
    c.on('close', (code) => done({ code, stdout, stderr }));
  });
}
