/** Link switching on a real tree: by name and MAC, all of a node's links, unknown nodes, concurrent switchers. */
import { spawn } from 'node:child_process';
import { mkdir, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StageError, UsageError } from '../build/lib/errors.ts';
import { readProfiles, resolveNodes, switchNodes } from '../build/lifecycle/links.ts';
import { listTree } from '../build/stages/checksum-tree.ts';
import type { Plan } from '../build/plan/plan.ts';
import { writeServedTree, writeSpec } from './helpers/served-tree.ts';
import { workspace } from './helpers/workspace.ts';
import { IPXE_DIR, ipxeNodeFile, PXELINUX_DIR } from '../build/layout.ts';

let ws: Awaited<ReturnType<typeof workspace>>;
let plan: Plan;
let specFile: string;
let root: string;

beforeEach(async () => {
  ws = await workspace('pc-links-');
  ({ plan, file: specFile } = await writeSpec(ws.dir, { count: 4 }));
  root = join(ws.dir, 'public');
  await writeServedTree(root, plan);
});
afterEach(() => ws.cleanup());

const link = (dir: string, name: string) => readlink(join(root, dir, name));

describe('switchNodes', () => {
  it('switches a node by name and by any MAC spelling, pxelinux and iPXE links together', async () => {
    const nodes = resolveNodes(plan.nodes, ['node1', 'C0-3F-D5-60-00-02', 'c03f.d560.0003']);
    expect(nodes.map((n) => n.name)).toEqual(['node1', 'node2', 'node3']);
    const started = performance.now();
    const res = await switchNodes(nodes, 'arch-linux', { root });
    const ms = performance.now() - started;
    console.log(`switch of 3 nodes (6 links): ${ms.toFixed(2)} ms`);
    expect(res.map((r) => [r.node, r.from, r.to])).toEqual([
      ['node1', 'installer', 'arch-linux'],
      ['node2', 'installer', 'arch-linux'],
      ['node3', 'installer', 'arch-linux'],
    ]);
    expect(await link('pxe/pxelinux.cfg', '01-c0-3f-d5-60-00-02')).toBe('arch-linux');
    expect(await link('pxe/ipxe', '01-c0-3f-d5-60-00-02.ipxe')).toBe('arch-linux.ipxe');
    expect(await link('pxe/pxelinux.cfg', '01-c0-3f-d5-60-00-04')).toBe('installer');
    expect((await readdir(join(root, 'pxe/pxelinux.cfg'))).filter((f) => f.startsWith('.'))).toEqual([]);
    const profiles = await readProfiles(plan.nodes, { root });
    expect([...profiles.values()]).toEqual(['arch-linux', 'arch-linux', 'arch-linux', 'installer']);
  });

  it('unknown nodes are a usage error and nothing is switched', async () => {
    const before = await listTree(root);
    expect(() => resolveNodes(plan.nodes, ['node1', 'node9', 'aa:bb:cc:dd:ee:ff'])).toThrow(UsageError);
    expect(() => resolveNodes(plan.nodes, ['node1', 'node9'])).toThrow(/unknown node: node9; nothing was switched/);
    expect(() => resolveNodes(plan.nodes, [])).toThrow(UsageError);
    expect(() => resolveNodes(plan.nodes, ['node1'], true)).toThrow(UsageError);
    expect(resolveNodes(plan.nodes, [], true)).toHaveLength(4);
    // Through the CLI: exit 2, tree unchanged.
    const r = await cli(['rescue', 'node1', 'node9', '--config', specFile, '--root', root, '--state', join(ws.dir, 'state.json')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown node: node9');
    expect(await listTree(root)).toEqual(before);
  });

  it('a missing profile file switches nothing', async () => {
    await rm(join(root, 'pxe/ipxe/rescue.ipxe'));
    await expect(switchNodes(plan.nodes, 'rescue', { root })).rejects.toThrow(StageError);
    await expect(switchNodes(plan.nodes, 'rescue', { root, viaShell: true })).rejects.toThrow(/no profile file pxe\/ipxe\/rescue.ipxe; nothing was switched/);
    expect([...(await readProfiles(plan.nodes, { root })).values()].every((p) => p === 'installer')).toBe(true);
    // A tree without iPXE files (older builds) still switches its pxelinux links.
    await rm(join(root, 'pxe/ipxe'), { recursive: true });
    const res = await switchNodes(plan.nodes.slice(0, 1), 'rescue', { root });
    expect(res[0]!.links).toEqual(['pxe/pxelinux.cfg/01-c0-3f-d5-60-00-01']);
  });

  it('the sh script (the --ssh path) does the same as the local switch', async () => {
    const res = await switchNodes(resolveNodes(plan.nodes, ['node4']), 'rescue', { root, viaShell: true });
    expect(res).toEqual([{ node: 'node4', mac: 'c0:3f:d5:60:00:04', from: 'installer', to: 'rescue', links: ['pxe/pxelinux.cfg/01-c0-3f-d5-60-00-04', 'pxe/ipxe/01-c0-3f-d5-60-00-04.ipxe'] }]);
    expect(await link('pxe/ipxe', '01-c0-3f-d5-60-00-04.ipxe')).toBe('rescue.ipxe');
    expect((await readProfiles(plan.nodes, { root, viaShell: true })).get('node4')).toBe('rescue');
  });

  it('the CLI switches, records the request and normal records done', async () => {
    const state = join(ws.dir, 'state.json');
    const r = await cli(['reimage', 'node2', '--config', specFile, '--root', root, '--state', state, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).switched[0]).toMatchObject({ node: 'node2', to: 'installer' });
    const s = await cli(['status', '--config', specFile, '--root', root, '--state', state, '--json']);
    expect(JSON.parse(s.stdout).nodes[1]).toMatchObject({ name: 'node2', profile: 'installer', state: 'requested' });
    await cli(['normal', 'node2', '--config', specFile, '--root', root, '--state', state]);
    const s2 = JSON.parse((await cli(['status', '--config', specFile, '--root', root, '--state', state, '--json'])).stdout);
    expect(s2.nodes[1]).toMatchObject({ profile: 'arch-linux', state: 'done', phase: 'normal' });
  });

  it('diskless switches pxelinux and iPXE links to the diskless profile and records the request; refused when the spec builds none', async () => {
    const dir = join(ws.dir, 'diskless');
    await mkdir(dir);
    const d = await writeSpec(dir, { count: 2, diskless: true });
    const droot = join(dir, 'public');
    await writeServedTree(droot, d.plan);
    const state = join(ws.dir, 'state.json');
    const r = await cli(['diskless', 'node1', '--config', d.file, '--root', droot, '--state', state, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ action: 'diskless', profile: 'diskless', switched: [{ node: 'node1', from: 'installer', to: 'diskless' }] });
    expect(await readlink(join(droot, PXELINUX_DIR, d.plan.nodes[0]!.pxeFile))).toBe('diskless');
    expect(await readlink(join(droot, IPXE_DIR, ipxeNodeFile(d.plan.nodes[0]!.mac)))).toBe('diskless.ipxe');
    const s = JSON.parse((await cli(['status', '--config', d.file, '--root', droot, '--state', state, '--json'])).stdout);
    expect(s.nodes[0]).toMatchObject({ name: 'node1', profile: 'diskless', state: 'requested' });
    expect(s.nodes[0].detail).toBe('diskless: switched to diskless');

    // The default spec fixture has boot.diskless off: a usage error, nothing switched.
    const before = await listTree(root);
    const no = await cli(['diskless', '--all', '--config', specFile, '--root', root, '--state', state]);
    expect(no.code).toBe(2);
    expect(no.stderr).toBe('portacluster: the spec builds no diskless profile; nothing was switched\n  hint: set boot.diskless: true (and installerEnv.type: "builtin"), then build and deploy\n');
    expect(await listTree(root)).toEqual(before);
  });

  it('--reboot runs the spec command with {name} {mac} {ip} filled in', async () => {
    const out = join(ws.dir, 'reboots');
    const { file } = await writeSpec(ws.dir, { count: 2, reboot: () => ['sh', '-c', `echo "$0 $1" >> ${out}`, '{name}', '{mac}'] });
    const r = await cli(['rescue', '--all', '--reboot', '--config', file, '--root', root, '--state', join(ws.dir, 's.json')]);
    expect(r.code).toBe(0);
    expect(await import('node:fs/promises').then((f) => f.readFile(out, 'utf8'))).toBe('node1 c0:3f:d5:60:00:01\nnode2 c0:3f:d5:60:00:02\n');
  });

  it('concurrent switchers in several processes never leave a missing or dangling link', async () => {
    const script = join(ws.dir, 'switcher.mts');
    await writeFile(
      script,
      [
        `import { switchNodes } from ${JSON.stringify(resolve('build/lifecycle/links.ts'))};`,
        `const nodes = JSON.parse(process.argv[2]); const profiles = JSON.parse(process.argv[3]);`,
        `for (let i = 0; i < 150; i++) await switchNodes(nodes, profiles[i % profiles.length], { root: process.argv[4] });`,
      ].join('\n'),
    );
    const profileSets = [['installer', 'arch-linux'], ['rescue', 'installer'], ['arch-linux', 'rescue'], ['installer', 'rescue', 'arch-linux']];
    const children = profileSets.map(
      (p) =>
        new Promise<number | null>((done) => {
          const c = spawn(process.execPath, ['--import', 'tsx', script, JSON.stringify(plan.nodes), JSON.stringify(p), root], { stdio: ['ignore', 'ignore', 'inherit'] });
          c.on('close', done);
        }),
    );
    let running = true;
    const all = Promise.all(children).finally(() => (running = false));
    let reads = 0;
    const problems: string[] = [];
    while (running) {
      for (const n of plan.nodes) {
        for (const [dir, name] of [[PXELINUX_DIR, n.pxeFile], [IPXE_DIR, ipxeNodeFile(n.mac)]] as const) {
          // What pxelinux's TFTP read does: open the name, follow the link.
          await stat(join(root, dir, name)).catch((e: Error) => problems.push(`${dir}/${name}: ${e.message}`));
          reads++;
        }
      }
    }
    expect(await all).toEqual([0, 0, 0, 0]);
    console.log(`concurrent: 4 processes × 150 switches × 8 links, ${reads} reads in between, problems: ${problems.length}`);
    expect(problems).toEqual([]);
    expect(reads).toBeGreaterThan(100);
    for (const dir of [PXELINUX_DIR, IPXE_DIR]) expect((await readdir(join(root, dir))).filter((f) => f.includes('.tmp-'))).toEqual([]);
    // Each node's two links agree with each other only per process; but every link points at a real profile.
    for (const p of (await readProfiles(plan.nodes, { root })).values()) expect(plan.profiles.all).toContain(p);
  });
});

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
