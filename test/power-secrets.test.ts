/**
 * Secrets stay references: a spec whose nodes have ipmi, redfish and pdu power with a password file (and an
 * environment variable) holding a distinctive marker is validated, built and powered; the marker must be in
 * no output, no --json document, nowhere under dist/ (the served spec copy etc/portacluster.json included).
 * And validate's host check: a missing or group/world-readable secret file is reported at its spec path.
 */
import { spawn } from 'node:child_process';
import { chmod, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNetns, type Netns } from './e2e/harness/netns.ts';
import { baseSpec } from './fixtures/specs.ts';
import { makeSysrcdIso } from './helpers/make-iso.ts';
import { makeTinyRootfs } from './helpers/tiny-rootfs.ts';
import { FIXED_EPOCH, workspace } from './helpers/workspace.ts';

const BIN = resolve('bin/portacluster.js');
const MARK = 'S3cr3t-M4rker-q9Zt';
const MARK_ENV = 'Env-M4rker-w7Yp';
let ws: Awaited<ReturnType<typeof workspace>>;
let ns: Netns;
let specFile: string;
let pw: string;
const outputs: string[] = [];

function pc(args: string[], o: { netns?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const argv = [...(o.netns ? ['ip', 'netns', 'exec', o.netns] : []), process.execPath, BIN, ...args];
  return new Promise((done) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: ws.dir,
      env: { ...process.env, SOURCE_DATE_EPOCH: String(FIXED_EPOCH), PC_BMC_PASSWORD: MARK_ENV, PORTACLUSTER_LAB_REGISTRY: join(ws.dir, 'no-lab') },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    child.on('close', (code) => {
      outputs.push(stdout, stderr);
      done({ code, stdout, stderr });
    });
  });
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(join(e.parentPath, e.name));
  return out;
}

beforeAll(async () => {
  ws = await workspace('pc-power-secrets-');
  const rootfs = join(ws.dir, 'rootfs');
  await makeTinyRootfs(rootfs);
  const iso = await makeSysrcdIso(join(ws.dir, 'iso'), 'modern');
  pw = join(ws.dir, 'bmc.pw');
  await writeFile(pw, `${MARK}\n`, { mode: 0o600 });
  const spec = baseSpec();
  spec.image = { name: 'tiny', distro: 'debian', release: 'bookworm', rootfs };
  spec.boot.os.name = 'debian';
  spec.installerEnv = { type: 'systemrescue', path: iso.path, sha256: iso.sha256 };
  spec.nodes[0].power = { type: 'ipmi', host: '192.168.10.201', user: 'ADMIN', passwordFile: pw, cipherSuite: 3 };
  spec.nodes[1].power = { type: 'redfish', url: 'https://192.168.10.202', user: 'root', passwordEnv: 'PC_BMC_PASSWORD' };
  spec.nodes.push({ name: 'node3', mac: 'c0:3f:d5:60:00:33', firmware: 'bios' });
  // node3 has no power of its own: the cluster-wide PDU applies.
  spec.power = { type: 'pdu', host: '192.168.10.5', communityFile: pw, outlets: [3] };
  specFile = join(ws.dir, 'spec.json');
  await writeFile(specFile, JSON.stringify(spec, null, 2));
  ns = await createNetns(`pcsec-${process.pid}`, '192.168.10.10/24');
}, 120_000);

afterAll(async () => {
  await ns?.stop();
  await ws?.cleanup();
});

describe('power secrets', () => {
  it('never reach an output, a --json document, dist/ or the served spec copy', { timeout: 240_000 }, async () => {
    const v = await pc(['validate', '-c', specFile, '--json']);
    expect(v.code, v.stderr + v.stdout).toBe(0);
    const b = await pc(['build', '-c', specFile, '--out', 'dist', '--cache', join(ws.dir, 'cache')]);
    expect(b.code, b.stderr).toBe(0);
    const served = JSON.parse(await readFile(join(ws.dir, 'dist/etc/portacluster.json'), 'utf8'));
    // The served spec names the references (node0 needs them), never what they hold.
    expect(served.nodes[0].power.passwordFile).toBe(pw);

    const st = await pc(['power', 'status', '--all', '-c', specFile, '--timeout', '1', '--retries', '0', '--json'], { netns: ns.name });
    expect(st.code).toBe(1);
    const table = await pc(['power', 'cycle', '--all', '-c', specFile, '--timeout', '1', '--retries', '0'], { netns: ns.name });
    expect(table.code).toBe(1);
    const reboot = await pc(['reimage', '--all', '--reboot', '-c', specFile, '--root', 'dist', '--state', join(ws.dir, 'state.json'), '--json'], { netns: ns.name });
    expect(reboot.code).toBe(1);

    const leaks: string[] = [];
    outputs.forEach((o, i) => [MARK, MARK_ENV].forEach((m) => o.includes(m) && leaks.push(`output ${i}: ${o.slice(0, 200)}`)));
    for (const f of await filesUnder(join(ws.dir, 'dist'))) {
      const bytes = await readFile(f);
      for (const m of [MARK, MARK_ENV]) if (bytes.includes(m)) leaks.push(f);
    }
    expect(leaks).toEqual([]);
    const rows = JSON.parse(st.stdout).rows;
    expect(rows.map((r: any) => [r.node, r.ok])).toEqual([['node1', false], ['node2', false], ['node3', false]]);
    expect(rows[0].error).toMatch(/^node1: BMC 192\.168\.10\.201:623 did not answer/);
    // The test can fail: the marker is really in the file the spec names.
    expect(await readFile(pw, 'utf8')).toContain(MARK);
  });

  it('validate reports a missing or too-open secret file at its spec path, with the fix', async () => {
    await chmod(pw, 0o644);
    const open = await pc(['validate', '-c', specFile]);
    expect(open.code).toBe(2);
    expect(open.stderr).toContain(`  nodes[0].power.passwordFile: ${pw} is readable by others (mode 0644)\n    hint: chmod 600 ${pw}\n`);
    expect(open.stderr).toContain(`  power.communityFile: ${pw} is readable by others (mode 0644)\n    hint: chmod 600 ${pw}\n    (on a host other than node0, --no-secrets skips this check)\n`);
    expect((await pc(['validate', '-c', specFile, '--no-secrets'])).code).toBe(0);
    // A power call refuses the open file too, naming it and the fix, not its contents.
    const call = await pc(['power', 'status', 'node1', '-c', specFile, '--json'], { netns: ns.name });
    expect(JSON.parse(call.stdout).rows[0].error).toBe(`node1's BMC password: ${pw} is readable by others (mode 0644)\n  hint: chmod 600 ${pw}`);
    await rm(pw);
    const missing = await pc(['validate', '-c', specFile, '--json']);
    expect(missing.code).toBe(2);
    expect(JSON.parse(missing.stdout).issues[0]).toEqual({ path: 'nodes[0].power.passwordFile', message: `${pw} does not exist on this host`, hint: `create it on node0 with the secret on its first line, then chmod 600 ${pw}` });
  });
});
