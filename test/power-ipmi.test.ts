/**
 * IPMI power for real: OpenIPMI's ipmi_sim (the lab's BMC stand-in, build/lab/ipmi-bmc.ts) as the BMC of a
 * QEMU VM that never boots (-S, no disk), driven by the real CLI over RMCP+ (lanplus) inside a network
 * namespace this test makes; then `portacluster lab up` with an ipmi node, powered from the host (the CLI
 * runs itself again inside the lab's namespace), and `lab down` leaving nothing.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EMU_COMMANDS, lanConf, startIpmiBmc } from '../build/lab/ipmi-bmc.ts';
import { netnsExists } from '../build/lab/netns.ts';
import { pidAlive } from '../build/lib/process.ts';
import { run } from '../build/lib/run.ts';
import { monitorCommand } from '../build/power/qemu-monitor.ts';
import { planCluster } from '../build/plan/plan.ts';
import { validateSpec } from '../build/spec/validate.ts';
import { createNetns, type Netns } from './e2e/harness/netns.ts';
import { baseSpec } from './fixtures/specs.ts';
import { writeServedTree } from './helpers/served-tree.ts';
import { workspace } from './helpers/workspace.ts';

const BIN = resolve('bin/portacluster.js');
const BMC = '192.168.10.211';
const PASSWORD = 'pw-ipmi-7Hq2Zx';

let ws: Awaited<ReturnType<typeof workspace>>;
let ns: Netns;
let monitor: string;
let bmcPid = 0;
const registry = () => join(ws.dir, 'registry');

function pc(args: string[], o: { netns?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const argv = [...(o.netns ? ['ip', 'netns', 'exec', o.netns] : []), process.execPath, BIN, ...args];
  const started = Date.now();
  return new Promise((done) => {
    const child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, PORTACLUSTER_LAB_REGISTRY: registry() } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    child.on('close', (code) => done({ code, stdout, stderr, ms: Date.now() - started }));
  });
}

const ipmi = (o: object = {}) => ({ type: 'ipmi', host: BMC, port: 623, user: 'admin', passwordFile: join(ws.dir, 'bmc.pw'), cipherSuite: 3, ...o });

async function writeSpecFile(name: string, mutate: (s: Record<string, any>) => void): Promise<string> {
  const s = baseSpec();
  mutate(s);
  const file = join(ws.dir, name);
  await writeFile(file, JSON.stringify(s, null, 2));
  return file;
}

// "running", "paused (prelaunch)" (never powered on), "paused" (powered off by the BMC: stopped and reset).
const vmStatus = async () => (await monitorCommand(monitor, 'info status')).replace(/^VM status: /, '');

beforeAll(async () => {
  ws = await workspace('pc-power-ipmi-');
  await chmod(ws.dir, 0o755);
  await mkdir(registry());
  await writeFile(join(ws.dir, 'bmc.pw'), `${PASSWORD}\n`, { mode: 0o600 });
  await writeFile(join(ws.dir, 'wrong.pw'), 'not-the-password\n', { mode: 0o600 });
  ns = await createNetns(`pcpw-${process.pid}`, '192.168.10.10/24');
  monitor = join(ws.dir, 'node1.monitor');
  // Never boots: -S holds it at power-on, as the lab's VMs start; -no-shutdown keeps qemu when "off".
  ns.spawn(['qemu-system-x86_64', '-S', '-no-shutdown', '-nodefaults', '-display', 'none', '-m', '64', '-monitor', `unix:${monitor},server,nowait`]);
  for (let i = 0; i < 100 && !(await monitorCommand(monitor, 'info status').then(() => true, () => false)); i++) await new Promise((r) => setTimeout(r, 100));
  const bmc = await startIpmiBmc({ ns: ns.name, bridge: ns.bridge, name: 'node1', address: BMC, port: 623, user: 'admin', password: { file: join(ws.dir, 'bmc.pw') }, dir: ws.dir, vm: { monitor } });
  bmcPid = bmc.pid;
}, 60_000);

afterAll(async () => {
  if (bmcPid && pidAlive(bmcPid)) process.kill(bmcPid, 'SIGKILL');
  await ns?.stop();
  await ws?.cleanup();
});

describe('portacluster power over IPMI (ipmi_sim + a QEMU VM)', () => {
  it('status, on, cycle, off tell and change the VM state truthfully; --json has one row per node', { timeout: 120_000 }, async () => {
    const spec = await writeSpecFile('spec.json', (s) => (s.nodes[0].power = ipmi()));
    const power = async (action: string) => {
      const r = await pc(['power', action, 'node1', '-c', spec, '--json'], { netns: ns.name });
      expect(r.code, r.stderr + r.stdout).toBe(0);
      const doc = JSON.parse(r.stdout);
      expect(doc).toMatchObject({ ok: true, action });
      expect(Object.keys(doc.rows[0]).sort()).toEqual(['after', 'before', 'describe', 'driver', 'ms', 'node', 'ok']);
      return { ...doc.rows[0], wall: r.ms };
    };
    const figures: string[] = [];
    expect(await vmStatus()).toBe('paused (prelaunch)');
    const s1 = await power('status');
    expect(s1).toMatchObject({ node: 'node1', driver: 'ipmi', describe: `ipmi ${BMC}:623 (lanplus, cipher suite 3)`, before: 'off', after: 'off' });
    const on = await power('on');
    expect(on).toMatchObject({ before: 'off', after: 'on' });
    expect(await vmStatus()).toBe('running');
    expect((await power('status')).before).toBe('on');
    const cycle = await power('cycle');
    expect(cycle).toMatchObject({ before: 'on', after: 'on' });
    expect(await vmStatus()).toBe('running');
    const off = await power('off');
    expect(off).toMatchObject({ before: 'on', after: 'off' });
    expect(await vmStatus()).not.toBe('running');
    // cycle on a node that is off powers it on
    expect(await power('cycle')).toMatchObject({ before: 'off', after: 'on' });
    expect(await vmStatus()).toBe('running');
    for (const [a, r] of [['status', s1], ['on', on], ['cycle', cycle], ['off', off]] as const) figures.push(`${a} ${r.ms} ms (wall ${r.wall} ms)`);
    console.log(`ipmi power via ipmi_sim: ${figures.join(', ')}`);

    // The table a terminal gets, and the password nowhere in any output.
    const t = await pc(['power', 'status', 'node1', '-c', spec], { netns: ns.name });
    expect(t.stdout).toMatch(/^NODE +DRIVER +BEFORE +AFTER +TIME +RESULT\nnode1 +ipmi 192\.168\.10\.211:623 \(lanplus, cipher suite 3\) +on +on +\d+\.\ds +ok\n1\/1 node read\n$/);
    expect(t.stdout + t.stderr).not.toContain(PASSWORD);
  });

  it('reimage --reboot sets the next boot to PXE once (the BMC keeps and then uses it) and powers the node around', { timeout: 60_000 }, async () => {
    const spec = await writeSpecFile('spec.json', (s) => (s.nodes[0].power = ipmi()));
    const root = join(ws.dir, 'tree');
    await writeServedTree(root, planCluster(validateSpec(JSON.parse(await readFile(spec, 'utf8')))));
    const how = (await vmStatus()) === 'running' ? 'cycle' : 'on';
    const r = await pc(['reimage', 'node1', '--reboot', '-c', spec, '--root', root, '--state', join(ws.dir, 'state.json'), '--json'], { netns: ns.name });
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(JSON.parse(r.stdout).reboots).toEqual([{ node: 'node1', driver: 'ipmi', describe: `ipmi ${BMC}:623 (lanplus, cipher suite 3)`, bootOnce: 'set', how, ok: true }]);
    // A BMC's cycle is off, a pause (ipmi_sim: 1 s), on: the VM runs again shortly after the command returns.
    for (let i = 0; i < 50 && (await vmStatus()) !== 'running'; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await vmStatus()).toBe('running');
    // ipmi_sim stored "pxe, next boot only" and the reset that followed used (and cleared) it.
    expect(await readFile(join(ws.dir, 'node1.bmc', 'boot.log'), 'utf8')).toMatch(/boot-once pxe used\n$/);
    expect((await readFile(join(ws.dir, 'node1.bmc', 'boot'), 'utf8')).trim()).toBe('default');
  });

  it('a BMC that refuses the boot device is reported per node (best effort), and its refusal of power in its own words', { timeout: 60_000 }, async () => {
    // ipmi_sim with no chassis to drive: it refuses boot parameters and power control, as some BMCs refuse bootdev.
    const dir = join(ws.dir, 'bare');
    await mkdir(join(dir, 'state'), { recursive: true });
    await writeFile(join(dir, 'lan.conf'), lanConf({ name: 'bare', address: '192.168.10.212', port: 623, user: 'admin', password: PASSWORD }), { mode: 0o600 });
    await writeFile(join(dir, 'emu.cmd'), EMU_COMMANDS);
    await run(['ip', '-n', ns.name, 'addr', 'add', '192.168.10.212/32', 'dev', ns.bridge]);
    ns.spawn(['ipmi_sim', '-c', join(dir, 'lan.conf'), '-f', join(dir, 'emu.cmd'), '-s', join(dir, 'state'), '-n']);
    for (let i = 0; i < 50; i++) {
      if ((await run(['ip', 'netns', 'exec', ns.name, 'ss', '-Hunl', 'sport = :623'], { nothrow: true })).stdout.includes('192.168.10.212:623')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const spec = await writeSpecFile('bare.json', (s) => (s.nodes[1].power = ipmi({ host: '192.168.10.212' })));
    const root = join(ws.dir, 'bare-tree');
    await writeServedTree(root, planCluster(validateSpec(JSON.parse(await readFile(spec, 'utf8')))));
    const r = await pc(['reimage', 'node2', '--reboot', '-c', spec, '--root', root, '--state', join(ws.dir, 'bare-state.json')], { netns: ns.name });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('reboot node2: boot once from the network: node2: BMC 192.168.10.212:623 refused "chassis bootdev pxe": Set Chassis Boot Parameter 4 failed: Invalid data field in request; Set Chassis Boot Parameter 5 failed: Invalid data field in request (best effort: its link still decides what it boots)\n');
    expect(r.stdout).toContain('reboot node2: FAILED node2: BMC 192.168.10.212:623 refused "power on": Set Chassis Power Control to Up/On failed: Invalid data field in request\n');
    // The switch itself happened: the per-MAC link decides what the node boots.
    expect(r.stdout).toMatch(/node2 +c0:3f:d5:60:cd:8b +\S+ -> installer/);
  });

  it('a BMC that does not answer is an error naming it, within the timeout; a wrong password is refused in ipmitool\'s words, not retried', { timeout: 60_000 }, async () => {
    const spec = await writeSpecFile('bad.json', (s) => {
      s.nodes[0].power = ipmi({ passwordFile: join(ws.dir, 'wrong.pw') });
      s.nodes[1].power = ipmi({ port: 9 });
    });
    const silent = await pc(['power', 'status', 'node2', '-c', spec, '--timeout', '2', '--retries', '1', '--json'], { netns: ns.name });
    expect(silent.code).toBe(1);
    const row = JSON.parse(silent.stdout).rows[0];
    expect(row).toMatchObject({ node: 'node2', ok: false, before: null });
    expect(row.error).toMatch(/^node2: BMC 192\.168\.10\.211:9 did not answer \(2 tries, ~2 s each\): .*Unable to establish IPMI v2 \/ RMCP\+ session/);
    // Two tries of ~2 s, plus the CLI's start: well inside the hard limit of (2 + 5) s per try.
    expect(row.ms).toBeLessThan(2 * 7000);
    console.log(`unanswering BMC, --timeout 2 --retries 1: failed after ${row.ms} ms`);

    const refused = await pc(['power', 'on', 'node1', '-c', spec, '--json'], { netns: ns.name });
    expect(refused.code).toBe(1);
    const r = JSON.parse(refused.stdout).rows[0];
    expect(r.error).toMatch(/^node1: BMC 192\.168\.10\.211:623 refused "power status": RAKP 2 HMAC is invalid; Error: Unable to establish IPMI v2 \/ RMCP\+ session$/);
    expect(r.ms).toBeLessThan(3000);
    expect(refused.stdout + refused.stderr + silent.stdout + silent.stderr).not.toContain(PASSWORD);
  });
});

describe('portacluster lab up with an IPMI, a Redfish and a PDU node', () => {
  it('starts each node\'s BMC stand-in (IPMI, Redfish, PDU) on its spec address; power from the host runs inside the lab namespace and tells the truth; lab down stops them', { timeout: 240_000 }, async () => {
    // The VM of the test above goes first: one VM at a time.
    await ns.stop();
    const cluster = `pwlab${process.pid}`.slice(0, 20);
    const spec = await writeSpecFile('lab.json', (s) => {
      s.cluster = cluster;
      s.nodes[0].power = ipmi();
      // The other two kinds beside it: the lab's Redfish emulator (TLS checked against the lab's CA) and PDU.
      s.nodes[1].power = { type: 'redfish', url: 'https://192.168.10.212', user: 'root', passwordFile: join(ws.dir, 'bmc.pw'), caFile: join(ws.dir, 'lab', 'lab-ca.pem') };
      s.nodes.push({ name: 'node3', mac: 'c0:3f:d5:60:e5:b9', ip: '192.168.10.13', firmware: 'bios', power: { type: 'pdu', host: '192.168.10.213', communityFile: join(ws.dir, 'bmc.pw'), outlets: [3] } });
    });
    const root = join(ws.dir, 'labtree');
    // A small served tree (per-node links included, so reimage can switch them) and the spec serve reads.
    await writeServedTree(root, planCluster(validateSpec(JSON.parse(await readFile(spec, 'utf8')))));
    await mkdir(join(root, 'etc'), { recursive: true });
    await writeFile(join(root, 'etc/portacluster.json'), await readFile(spec, 'utf8'));
    const labDir = join(ws.dir, 'lab');
    const up = await pc(['lab', 'up', '-c', spec, '--root', root, '--dir', labDir, '--nodes', '3', '--memory', '512', '--state', join(ws.dir, 'lab-state.json'), '--json']);
    let lab: any;
    try {
      expect(up.code, up.stderr + up.stdout).toBe(0);
      lab = JSON.parse(up.stdout);
      expect(lab.vms[0].bmc).toMatchObject({ kind: 'ipmi', address: `${BMC}:623` });
      expect(pidAlive(lab.vms[0].bmc.pid)).toBe(true);

      const power = async (action: string) => {
        const r = await pc(['power', action, 'node1', '-c', spec, '--json']);
        expect(r.code, r.stderr + r.stdout).toBe(0);
        return JSON.parse(r.stdout).rows[0];
      };
      expect(lab.vms.map((v: any) => v.bmc?.kind)).toEqual(['ipmi', 'redfish', 'pdu']);
      // The truth for all three kinds at once, then each VM's own state against what power says.
      const all = async (action: string) => {
        const r = await pc(['power', action, '--all', '-c', spec, '--json']);
        expect(r.code, r.stderr + r.stdout).toBe(0);
        return JSON.parse(r.stdout).rows.map((x: any) => [x.node, x.driver, x.before, x.after ?? null]);
      };
      expect((await all('status')).map((x: any[]) => x.slice(0, 3))).toEqual([['node1', 'ipmi', 'off'], ['node2', 'redfish', 'off'], ['node3', 'pdu', 'off']]);
      expect((await all('on')).map((x: any[]) => [x[0], x[3]])).toEqual([['node1', 'on'], ['node2', 'on'], ['node3', 'on']]);
      for (const vm of lab.vms) expect(await monitorCommand(vm.monitor, 'info status'), vm.name).toMatch(/running/);
      expect((await all('off')).map((x: any[]) => [x[0], x[3]])).toEqual([['node1', 'off'], ['node2', 'off'], ['node3', 'off']]);
      for (const vm of lab.vms) expect(await monitorCommand(vm.monitor, 'info status'), vm.name).not.toMatch(/running/);
      expect(await power('status')).toMatchObject({ driver: 'ipmi', before: 'off' });
      expect(await power('on')).toMatchObject({ before: 'off', after: 'on' });
      expect((await monitorCommand(lab.vms[0].monitor, 'info status'))).toMatch(/running/);
      expect(await power('off')).toMatchObject({ before: 'on', after: 'off' });
      // The lead's loop: reimage --reboot from the host sets PXE once through the stand-in and powers the node on.
      const re = await pc(['reimage', 'node1', '--reboot', '-c', spec, '--root', root, '--state', join(ws.dir, 'lab-state.json'), '--json']);
      expect(re.code, re.stderr + re.stdout).toBe(0);
      expect(JSON.parse(re.stdout)).toMatchObject({ profile: 'installer', reboots: [{ node: 'node1', driver: 'ipmi', bootOnce: 'set', how: 'on', ok: true }] });
      expect(await readFile(join(labDir, 'node1.bmc', 'boot.log'), 'utf8')).toMatch(/boot-once pxe used\n$/);
      expect(await power('off')).toMatchObject({ before: 'on', after: 'off' });
      const st = JSON.parse((await pc(['lab', 'status', '-c', spec, '--root', root, '--json'])).stdout);
      expect(st.vms[0]).toMatchObject({ name: 'node1', power: 'off', bmc: { kind: 'ipmi', address: `${BMC}:623` } });
    } finally {
      const down = await pc(['lab', 'down', '-c', spec, '--root', root]);
      expect(down.code, down.stderr).toBe(0);
    }
    expect(down_ok(lab)).toBe(true);
    expect(await netnsExists(`pclab-${cluster}`)).toBe(false);
  });
});

function down_ok(lab: any): boolean {
  return !!lab && lab.vms.every((v: any) => !pidAlive(v.bmc.pid) && !pidAlive(v.pid)) && !pidAlive(lab.serve.pid);
}
