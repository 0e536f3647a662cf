/**
 * `portacluster why <node>` on a real built tree, through the CLI: a whole chain, a requested install, and
 * each way a chain breaks (MAC not in dnsmasq.conf, missing loader, no link, dangling link, missing kernel),
 * with the exact output asserted.
 */
import { spawn } from 'node:child_process';
import { cp, rm, symlink, unlink, writeFile, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseSpec } from './fixtures/specs.ts';
import { makeSysrcdIso } from './helpers/make-iso.ts';
import { makeTinyRootfs } from './helpers/tiny-rootfs.ts';
import { workspace, FIXED_EPOCH } from './helpers/workspace.ts';

const BIN = resolve('bin/portacluster.js');
let ws: Awaited<ReturnType<typeof workspace>>;
let spec: string;
let built: string;

function pc(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, SOURCE_DATE_EPOCH: String(FIXED_EPOCH) } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

/** A fresh copy of the built tree, broken by `damage`, and `why node1` on it. */
async function whyAfter(name: string, damage: (root: string) => Promise<void>) {
  const root = join(ws.dir, name);
  await cp(built, root, { recursive: true, verbatimSymlinks: true });
  await damage(root);
  return pc(['why', 'node1', '--config', spec, '--root', root, '--state', join(ws.dir, `${name}.state.json`)]);
}

const HEAD = 'node1 (c0:3f:d5:60:e5:a1)';
const DHCP = '  ok     dhcp   dhcp-host=c0:3f:d5:60:e5:a1,node1,192.168.10.11: fixed address 192.168.10.11';
const LOADER = '  ok     loader bios firmware gets pxelinux.0 over TFTP (pxelinux)';
const LINK = '  ok     link   pxe/pxelinux.cfg/01-c0-3f-d5-60-e5-a1 → installer';
const NOT_REQUESTED = '  next   a done report now changes nothing: it was not requested (portacluster reimage node1 requests one)';

beforeAll(async () => {
  ws = await workspace('pc-why-');
  const s = baseSpec();
  const iso = await makeSysrcdIso(join(ws.dir, 'iso'), 'modern');
  s.image = { name: 'tiny', distro: 'debian', release: 'bookworm', rootfs: await makeTinyRootfs(join(ws.dir, 'rootfs')) };
  s.boot.os.name = 'debian';
  s.installerEnv = { type: 'systemrescue', path: iso.path, sha256: iso.sha256 };
  spec = join(ws.dir, 'spec.json');
  await writeFile(spec, JSON.stringify(s, null, 2));
  built = join(ws.dir, 'dist');
  const b = await pc(['build', '--config', spec, '--out', built, '--cache', join(ws.dir, 'cache'), '-q']);
  expect(b.code, b.stderr).toBe(0);
}, 120_000);

afterAll(() => ws.cleanup());

describe('portacluster why', () => {
  it('explains a whole chain, and what done will do once an install is requested', async () => {
    const r = await whyAfter('whole', async () => {});
    expect(r.code, r.stderr).toBe(0);
    const boot = r.stdout.split('\n')[4]!;
    expect(boot).toMatch(/^ {2}ok {5}boot {3}kernel sysrcd-vmlinuz, initrd sysrcd-intel-ucode\.img \+ sysrcd-amd-ucode\.img \+ sysrcd-sysresccd\.img, command line: archisobasedir=sysresccd ip=dhcp archiso_http_srv=http:\/\/192\.168\.10\.10\/sysrcd\/ .*ar_source=http:\/\/192\.168\.10\.10\/installer\//);
    expect(r.stdout).toBe([HEAD, DHCP, LOADER, LINK, boot, '  the chain is whole', '  state  no report yet', NOT_REQUESTED, ''].join('\n'));

    // A requested reimage: the state says so, and done will switch the node to its OS.
    const root = join(ws.dir, 'whole');
    const state = join(ws.dir, 'whole.state.json');
    expect((await pc(['reimage', 'node1', '--config', spec, '--root', root, '--state', state])).code).toBe(0);
    const j = JSON.parse((await pc(['why', 'c0:3f:d5:60:e5:a1', '--config', spec, '--root', root, '--state', state, '--json'])).stdout);
    expect(j).toMatchObject({ node: 'node1', broken: null, state: { state: 'requested', phase: 'requested' } });
    expect(j.onDone).toBe('when its installer reports done, the watcher switches its links to debian and it boots the installed OS');
  }, 60_000);

  it('names the first broken link of the chain, and exits 1', async () => {
    const cases: [string, (root: string) => Promise<void>, string[]][] = [
      [
        'no-dhcp',
        async (root) => writeFile(join(root, 'etc/dnsmasq.conf'), (await readFile(join(root, 'etc/dnsmasq.conf'), 'utf8')).replace(/^dhcp-host=c0:3f:d5:60:e5:a1,.*\n/m, '')),
        ['  BROKEN dhcp   c0:3f:d5:60:e5:a1 is not in etc/dnsmasq.conf: dnsmasq answers it as an unknown client (boot.default), not as node1; rebuild and deploy the tree', '  the chain breaks at "dhcp": the node does not get past it'],
      ],
      [
        'no-loader',
        (root) => unlink(join(root, 'pxe/pxelinux.0')),
        [DHCP, `  BROKEN loader bios firmware gets pxelinux.0, which is missing from ${join(ws.dir, 'no-loader', 'pxe')}`, '  the chain breaks at "loader": the node does not get past it'],
      ],
      [
        'no-link',
        (root) => unlink(join(root, 'pxe/pxelinux.cfg/01-c0-3f-d5-60-e5-a1')),
        [DHCP, LOADER, '  BROKEN link   no pxe/pxelinux.cfg/01-c0-3f-d5-60-e5-a1: the loader falls back to the default profile (installer); portacluster reimage|normal node1 makes the link', '  the chain breaks at "link": the node does not get past it'],
      ],
      [
        'dangling',
        async (root) => {
          await unlink(join(root, 'pxe/pxelinux.cfg/01-c0-3f-d5-60-e5-a1'));
          await symlink('gone', join(root, 'pxe/pxelinux.cfg/01-c0-3f-d5-60-e5-a1'));
        },
        [DHCP, LOADER, '  BROKEN link   pxe/pxelinux.cfg/01-c0-3f-d5-60-e5-a1 → gone dangles: the profile file is missing; rebuild the tree, or switch the node to a profile that exists', '  the chain breaks at "link": the node does not get past it'],
      ],
      [
        'no-kernel',
        (root) => rm(join(root, 'pxe/sysrcd-vmlinuz')),
        [DHCP, LOADER, LINK, `  BROKEN boot   the profile installer boots sysrcd-vmlinuz, missing from ${join(ws.dir, 'no-kernel', 'pxe')}`, '  the chain breaks at "boot": the node does not get past it'],
      ],
    ];
    for (const [name, damage, lines] of cases) {
      const r = await whyAfter(name, damage);
      expect(r.code, `${name}: ${r.stderr}`).toBe(1);
      expect(r.stdout, name).toBe([HEAD, ...lines, '  state  no report yet', NOT_REQUESTED, ''].join('\n'));
    }
  }, 120_000);
});
