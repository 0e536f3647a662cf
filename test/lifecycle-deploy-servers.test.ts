/**
 * deploy with boot servers (build/lifecycle/deploy-servers.ts): node0 here (a local dir), two boot servers
 * over ssh — each a real sshd on 127.0.0.1 in a mount namespace of its own, whose disk is bind-mounted over
 * the spec's servedRoot, so each has its own /…/srv/public as a real server would. Each server's copy is its
 * own tree plus the shared boot files, verified there; a failure while staging switches nothing anywhere;
 * a server whose switch fails stays on its previous release and is named.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IPXE_DIR, ipxeNodeFile, NGINX_CONF, PXELINUX_DIR, pxePath, SERVED_SPEC, SUMS_FILE, autorunPath } from '../build/layout.ts';
import { run } from '../build/lib/run.ts';
import { deploy, releaseId } from '../build/lifecycle/deploy.ts';
import { serverLinks, switchNodes } from '../build/lifecycle/links.ts';
import { planCluster, type Plan } from '../build/plan/plan.ts';
import { validateSpec } from '../build/spec/validate.ts';
import { baseSpec, withServers } from './fixtures/specs.ts';
import { writeBootServerDist } from './helpers/served-tree.ts';
import { startSshd, type Sshd } from './helpers/sshd.ts';
import { workspace } from './helpers/workspace.ts';

let ws: Awaited<ReturnType<typeof workspace>>;
let plan: Plan;
let root: string;
let sshConfig: string;
const sshds = new Map<string, Sshd>();
const dist: Record<string, string> = {};
const NODE3 = 'c0:3f:d5:60:e5:a3';
const NODE4 = 'c0:3f:d5:60:e5:a4';

/** A server's disk as the host sees it (its sshd sees it at the spec's servedRoot). */
const disk = (name: string) => join(ws.dir, `${name}-disk`);
const live = async (base: string) => basename(await readlink(join(base, 'public')));
const read = (base: string, p: string) => readFile(join(base, 'public', p), 'utf8');

beforeAll(async () => {
  ws = await workspace('pc-deploy-servers-');
  root = join(ws.dir, 'srv');
  const spec = withServers(baseSpec());
  spec.admin.servedRoot = join(root, 'public');
  spec.bootServers[0].ssh = 'rack1-boot';
  spec.bootServers[1].ssh = 'rack2-boot';
  plan = planCluster(validateSpec(spec));
  await mkdir(root, { recursive: true });
  for (const v of ['v1', 'v2', 'v3']) await writeBootServerDist((dist[v] = join(ws.dir, `dist-${v}`)), plan, spec, v);
  const configs: string[] = [];
  for (const b of plan.bootServers) {
    await mkdir(disk(b.name), { recursive: true });
    const d = await startSshd(join(ws.dir, `ssh-${b.name}`), { alias: b.name, bindOver: { src: disk(b.name), dst: root } });
    sshds.set(b.name, d);
    configs.push(await readFile(d.sshConfig, 'utf8'));
  }
  sshConfig = join(ws.dir, 'ssh_config');
  await writeFile(sshConfig, configs.join(''));
}, 60_000);

afterAll(async () => {
  for (const d of sshds.values()) await d.stop();
  await ws?.cleanup();
});

describe('deploy with boot servers', () => {
  it("publishes node0's tree here and each server's copy on it, the same release everywhere, each verified", async () => {
    const r = await deploy({ from: dist.v1!, dest: join(root, 'public'), sshConfig });
    expect(r.servers.map((b) => [b.name, b.dest, b.error])).toEqual([
      ['rack1-boot', `rack1-boot:${root}/public`, null],
      ['rack2-boot', `rack2-boot:${root}/public`, null],
    ]);
    const id = await live(root);
    for (const b of plan.bootServers) expect(await live(disk(b.name))).toBe(id);
    // node0's own tree: no server's disk saw it, and node0 did not get a server's copy in its place.
    expect(await read(root, autorunPath('installer'))).toBe('#!/bin/bash\necho installer v1\n');
    // rack1's copy: its own scripts and configs at node0's paths, the shared kernel, its node's links only.
    expect(await read(disk('rack1-boot'), autorunPath('installer'))).toContain("PC_IMAGE_URL='http://10.100.1.1/images/os-v1.tar.zst'");
    expect(await read(disk('rack1-boot'), NGINX_CONF)).toContain('listen 10.100.1.1:80 default_server;');
    expect(await read(disk('rack1-boot'), pxePath('installer-kernel'))).toBe('kernel v1\n');
    expect((await readdir(join(disk('rack1-boot'), 'public', PXELINUX_DIR))).filter((n) => n.startsWith('01-'))).toEqual(['01-c0-3f-d5-60-e5-a3']);
    expect(existsSync(join(disk('rack2-boot'), 'public', IPXE_DIR, ipxeNodeFile(NODE4)))).toBe(true);
    // Nothing of node0's own that a server must not hold: its etc/, its spec, its images (the cache's).
    expect(existsSync(join(disk('rack1-boot'), 'public', SERVED_SPEC))).toBe(false);
    expect(existsSync(join(disk('rack1-boot'), 'public', 'images'))).toBe(false);
    // The server's SHA256SUMS covers its copy: verified there, and again here.
    expect(r.servers[0]!.checked).toBeGreaterThan(10);
    await run(['sh', '-c', `cd -- "$1" && sha256sum --quiet --strict -c ${SUMS_FILE}`, 'sh', join(disk('rack1-boot'), 'public')]);
  }, 60_000);

  it("keeps a node's switched link on its server across a deploy", async () => {
    // As reimage/normal switch it: on its server (over ssh, where it boots), then node0's copy.
    await switchNodes(plan.nodes.filter((n) => n.mac === NODE3), 'arch-linux', { root: join(root, 'public'), servers: serverLinks(plan, sshConfig) });
    const r = await deploy({ from: dist.v2!, dest: join(root, 'public'), sshConfig });
    expect(r.servers.every((b) => b.error === null)).toBe(true);
    expect(r.servers[0]!.keptLinks).toContain('pxe/pxelinux.cfg/01-c0-3f-d5-60-e5-a3 -> arch-linux');
    expect(await readlink(join(disk('rack1-boot'), 'public', PXELINUX_DIR, '01-c0-3f-d5-60-e5-a3'))).toBe('arch-linux');
    expect(await read(disk('rack2-boot'), autorunPath('installer'))).toContain('os-v2.tar.zst');
  }, 60_000);

  it('a server that cannot be reached while staging: nothing is switched anywhere, and it is named', async () => {
    const before = await live(root);
    await sshds.get('rack2-boot')!.stop();
    const err = await deploy({ from: dist.v3!, dest: join(root, 'public'), sshConfig }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/staging failed on 1 of 3 destinations; nothing was switched, every one still serves its previous release:\n {2}rack2-boot \(rack2-boot:/);
    expect(await live(root)).toBe(before);
    expect(await live(disk('rack1-boot'))).toBe(before);
    // The staged releases on node0 and rack1 are gone, not left for a half-published state.
    for (const base of [root, disk('rack1-boot')]) expect((await readdir(join(base, 'public.releases'))).filter((n) => n.startsWith('.incoming'))).toEqual([]);
    const again = await startSshd(join(ws.dir, 'ssh-rack2-boot-again'), { alias: 'rack2-boot', bindOver: { src: disk('rack2-boot'), dst: root } });
    sshds.set('rack2-boot', again);
    const cfg = (await readFile(sshConfig, 'utf8')).replace(/Host rack2-boot[\s\S]*$/, await readFile(again.sshConfig, 'utf8'));
    await writeFile(sshConfig, cfg);
  }, 60_000);

  it("a server whose switch fails after every destination verified stays on its previous release, which still works, and is named", async () => {
    const before = await live(disk('rack2-boot'));
    const now = new Date('2026-11-26T20:00:00.123Z');
    // The release's name is taken on rack2 only: its rename into place fails after staging verified.
    await mkdir(join(disk('rack2-boot'), 'public.releases', releaseId(now, plan.specHash), 'taken'), { recursive: true });
    const r = await deploy({ from: dist.v3!, dest: join(root, 'public'), sshConfig, now });
    expect(r.release).toMatch(new RegExp(`${releaseId(now, plan.specHash)}$`));
    expect(await live(root)).toBe(releaseId(now, plan.specHash));
    expect(r.servers.map((b) => [b.name, b.release === null, b.error === null])).toEqual([
      ['rack1-boot', false, true],
      ['rack2-boot', true, false],
    ]);
    expect(r.servers[1]!.error).toMatch(/publishing on rack2-boot failed/);
    expect(await live(disk('rack2-boot'))).toBe(before);
    expect(await read(disk('rack2-boot'), autorunPath('installer'))).toContain('os-v2.tar.zst');
  }, 60_000);

  it('the command says where each copy went, and brings a server that was behind level', async () => {
    const { main } = await import('../build/cli/main.ts');
    const lines: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((c: string) => (lines.push(String(c)), true)) as typeof process.stdout.write;
    let code: number;
    try {
      code = await main(['deploy', join(root, 'public'), '--from', dist.v2!, '--ssh-config', sshConfig, '--parallel', '2']);
    } finally {
      process.stdout.write = write;
    }
    expect(code).toBe(0);
    expect(lines.join('')).toMatch(/boot server rack1-boot: published .* at rack1-boot:.*\nboot server rack2-boot: published .* at rack2-boot:/);
    const id = await live(root);
    expect(await live(disk('rack2-boot'))).toBe(id);
  }, 60_000);
});
