/**
 * The Redfish driver against the lab's Redfish emulator (build/lab/redfish-service.ts, the lab's stand-in
 * for a BMC) powering a real QEMU VM, all inside a network namespace this test creates: the emulator
 * listens on the namespace's address, the driver's calls run there too (test/helpers/power-call.ts), and
 * the VM's truth is read from its monitor and the firmware's boot banners.
 */
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopDaemon } from '../build/lab/daemon.ts';
import { startRedfishBmc } from '../build/lab/redfish-bmc.ts';
import { run } from '../build/lib/run.ts';
import type { PlanPower } from '../build/plan/plan.ts';
import { createNetns, type Netns } from './e2e/harness/netns.ts';
import { latencyTable, powerCalls, startTestVm, waitFor, type TestVm } from './helpers/power-lab.ts';
import type { PowerJob } from './helpers/power-call.ts';
import { workspace } from './helpers/workspace.ts';

const ADDR = '10.213.0.1';
const PORT = 8443;
const PASSWORD = `rf-${process.pid}-s3cret`;
const policy = { timeoutMs: 5000, retries: 1 };

let ns: Netns;
let ws: { dir: string; cleanup: () => Promise<void> };
let vm: TestVm;
let bmc: { pid: number; url: string; caFile: string };
let power: Extract<PlanPower, { type: 'redfish' }>;
const figures: string[] = [];
/** The errors as a user sees them, printed with the figures. */
const words: string[] = [];

const job = (steps: PowerJob['steps'], over: Partial<typeof power> = {}): PowerJob => ({ node: 'node1', power: { ...power, ...over }, policy, steps });
const curl = (args: string[]) => run(ns.exec(['curl', '-sS', '--cacert', bmc.caFile, ...args]), { nothrow: true });

beforeAll(async () => {
  ws = await workspace('pc-redfish-');
  await chmod(ws.dir, 0o755);
  ns = await createNetns(`pc-rf-${process.pid}`, `${ADDR}/24`);
  vm = await startTestVm(ws.dir, 'node1');
  const passwordFile = join(ws.dir, 'bmc.password');
  await writeFile(passwordFile, PASSWORD + '\n', { mode: 0o600 });
  bmc = await startRedfishBmc({ ns: ns.name, name: 'node1-bmc', address: ADDR, port: PORT, user: 'admin', passwordFile, dir: ws.dir, vm });
  power = { type: 'redfish', url: bmc.url, user: 'admin', password: { file: passwordFile }, insecure: false, caFile: bmc.caFile };
});

afterAll(async () => {
  if (figures.length) console.log(`power latency (redfish, lab emulator):\n${figures.join('\n')}\n\nerrors as reported:\n${words.join('\n')}`);
  if (bmc) await stopDaemon(bmc.pid);
  await vm?.quit();
  await ns?.stop();
  await ws?.cleanup();
});

describe('redfish driver ↔ the lab Redfish emulator', () => {
  it('status reads the VM, off stops it, on starts it, cycle restarts it (an off node is powered on)', async () => {
    expect(await vm.power()).toBe('off'); // -S: never powered on
    const [s0, on, s1] = await powerCalls(ns.name, job(['status', 'on', 'status']));
    expect(s0).toMatchObject({ ok: true, result: 'off' });
    expect(on!.ok, on!.error).toBe(true);
    expect(await vm.power()).toBe('running');
    expect(s1).toMatchObject({ ok: true, result: 'on' });
    await waitFor('the first boot banner', async () => (await vm.boots()) >= 1);

    const [off, s2] = await powerCalls(ns.name, job(['off', 'status']));
    expect(off!.ok, off!.error).toBe(true);
    expect(await vm.power()).toBe('off');
    expect(s2).toMatchObject({ ok: true, result: 'off' });

    // A cycle of an off node powers it on.
    const [cycleOff] = await powerCalls(ns.name, job(['cycle']));
    expect(cycleOff!.ok, cycleOff!.error).toBe(true);
    expect(await vm.power()).toBe('running');

    // A cycle of a running node restarts the firmware: one more boot banner.
    await waitFor('a settled boot', async () => (await vm.boots()) >= 2);
    const before = await vm.settledBoots();
    const [cycleOn] = await powerCalls(ns.name, job(['cycle']));
    expect(cycleOn!.ok, cycleOn!.error).toBe(true);
    await waitFor('a boot banner after the cycle', async () => (await vm.boots()) > before);
    expect(await vm.power()).toBe('running');
    figures.push(latencyTable('redfish', [s0!, on!, off!, cycleOff!, cycleOn!]));
    // The emulator offers PowerCycle, so the driver used it (DSP0266 ResetType), and On for the off node.
    const log = await run(['cat', join(ws.dir, 'node1-bmc.redfish.log')]);
    expect(log.stdout).toMatch(/reset: On → running[\s\S]*reset: ForceOff → off[\s\S]*reset: On → running[\s\S]*reset: PowerCycle → running/);
  });

  it('boot once from the network: the override is visible in the ComputerSystem, with system id discovery', async () => {
    const [boot] = await powerCalls(ns.name, job(['bootOnceFromNetwork']));
    expect(boot).toMatchObject({ ok: true, result: null });
    figures.push(latencyTable('redfish', [boot!]));
    const sys = JSON.parse((await curl(['-u', `admin:${PASSWORD}`, `${bmc.url}/redfish/v1/Systems/1`])).stdout);
    expect(sys.Boot).toMatchObject({ BootSourceOverrideEnabled: 'Once', BootSourceOverrideTarget: 'Pxe' });
    expect(sys['@odata.type']).toMatch(/^#ComputerSystem\.v1_\d+_\d+\.ComputerSystem$/);
    // The next boot consumes a "Once" override, as a BMC does.
    await powerCalls(ns.name, job(['cycle']));
    const after = JSON.parse((await curl(['-u', `admin:${PASSWORD}`, `${bmc.url}/redfish/v1/Systems/1`])).stdout);
    expect(after.Boot.BootSourceOverrideEnabled).toBe('Disabled');
  });

  it('a wrong password is an error naming the node, the BMC URL, HTTP 401 and the Redfish message', async () => {
    const wrong = join(ws.dir, 'wrong.password');
    await writeFile(wrong, 'not-the-password\n', { mode: 0o600 });
    const [s] = await powerCalls(ns.name, job(['status'], { password: { file: wrong }, systemId: '1' }));
    expect(s!.ok).toBe(false);
    expect(s!.error).toContain('node1');
    expect(s!.error).toContain(`${bmc.url}/redfish/v1/Systems/1`);
    expect(s!.error).toContain('HTTP 401');
    expect(s!.error).toContain('There is no valid session established with the implementation.');
    expect(s!.error).not.toContain('not-the-password');
    words.push(s!.error!);
    // A world-readable password file is refused before any request, naming the file.
    await chmod(wrong, 0o644);
    const [loose] = await powerCalls(ns.name, job(['status'], { password: { file: wrong } }));
    expect(loose!.error).toMatch(new RegExp(`${wrong}.*readable by others`));
  });

  it('TLS: verified against caFile; refused without it naming the certificate problem; insecure accepts it', async () => {
    const [refused] = await powerCalls(ns.name, job(['status'], { caFile: undefined }));
    expect(refused!.ok).toBe(false);
    expect(refused!.error).toMatch(/TLS certificate was refused: .*(certificate|issuer).*\((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\)/);
    expect(refused!.error).toContain(bmc.url);
    words.push(refused!.error!);
    const [withCa] = await powerCalls(ns.name, job(['status']));
    expect(withCa).toMatchObject({ ok: true, result: 'on' });
    const [insecure] = await powerCalls(ns.name, job(['status'], { caFile: undefined, insecure: true }));
    expect(insecure).toMatchObject({ ok: true, result: 'on' });
    figures.push(latencyTable('redfish', [withCa!]));
  });

  it('a BMC that does not answer is an error naming it, after the policy\'s retries; a closed port likewise', async () => {
    // A listener that accepts the connection and never says a word (a hung BMC web server).
    const silent = ns.spawn(['python3', '-c', `import socket, time\ns = socket.socket()\ns.bind(("${ADDR}", 8445))\ns.listen(8)\ntime.sleep(120)`]);
    await new Promise((r) => setTimeout(r, 500));
    const quick = { timeoutMs: 1000, retries: 1 };
    const [hung] = await powerCalls(ns.name, { ...job(['status'], { url: `https://${ADDR}:8445` }), policy: quick });
    expect(hung!.ok).toBe(false);
    expect(hung!.error).toContain(`https://${ADDR}:8445/redfish/v1`);
    expect(hung!.error).toMatch(/did not answer within 1 s \(after 2 tries\)/);
    expect(hung!.ms).toBeGreaterThanOrEqual(2000);
    const [closed] = await powerCalls(ns.name, { ...job(['status'], { url: `https://${ADDR}:8446` }), policy: quick });
    expect(closed!.error).toMatch(/ECONNREFUSED.*\(after 2 tries\)/);
    figures.push(latencyTable('redfish hung', [hung!]), latencyTable('redfish refused', [closed!]));
    words.push(hung!.error!, closed!.error!);
    silent.kill();
  });

  it('the emulator: 401 without credentials, service root open, sessions by X-Auth-Token until deleted', async () => {
    const noAuth = await curl(['-o', '/dev/null', '-w', '%{http_code}', `${bmc.url}/redfish/v1/Systems`]);
    expect(noAuth.stdout).toBe('401');
    const root = JSON.parse((await curl([`${bmc.url}/redfish/v1`])).stdout);
    expect(root).toMatchObject({ '@odata.id': '/redfish/v1', Systems: { '@odata.id': '/redfish/v1/Systems' } });
    const login = await curl(['-D', '-', '-H', 'content-type: application/json', '-d', JSON.stringify({ UserName: 'admin', Password: PASSWORD }), `${bmc.url}/redfish/v1/SessionService/Sessions`]);
    expect(login.stdout).toMatch(/^HTTP\/1\.1 201/);
    const token = /^x-auth-token: (\S+)/im.exec(login.stdout)![1]!;
    const location = /^location: (\S+)/im.exec(login.stdout)![1]!;
    const code = (args: string[]) => curl(['-o', '/dev/null', '-w', '%{http_code}', ...args]).then((r) => r.stdout);
    expect(await code(['-H', `X-Auth-Token: ${token}`, `${bmc.url}/redfish/v1/Systems/1`])).toBe('200');
    expect(await code(['-X', 'DELETE', '-H', `X-Auth-Token: ${token}`, `${bmc.url}${location}`])).toBe('204');
    expect(await code(['-H', `X-Auth-Token: ${token}`, `${bmc.url}/redfish/v1/Systems/1`])).toBe('401');
  });
});
