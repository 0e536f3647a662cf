/**
 * The PDU driver (net-snmp's snmpget/snmpset) against the lab's PDU stand-in — a real snmpd whose APC
 * sPDUOutletCtl is served by a pass_persist handler powering a real QEMU VM through its monitor — all in a
 * network namespace this test creates. Also: no secret ever appears in any process's argv.
 */
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopDaemon } from '../build/lab/daemon.ts';
import { startPduAgent } from '../build/lab/pdu-agent.ts';
import { APC_OUTLET_CTL, type PlanPower } from '../build/plan/plan.ts';
import type { VmPower } from '../build/power/qemu-monitor.ts';
import { createNetns, type Netns } from './e2e/harness/netns.ts';
import type { PowerJob, StepResult } from './helpers/power-call.ts';
import { latencyTable, powerCalls, startTestVm, waitFor, type TestVm } from './helpers/power-lab.ts';
import { workspace } from './helpers/workspace.ts';

const ADDR = '10.214.0.1';
const PORT = 1161;
const AGENT = `udp:${ADDR}:${PORT}`;
// Secrets with a space and a quote: they must survive snmp.conf's quoting, and never show in argv.
const SECRETS = { community: `pdu "rw ${process.pid}`, ro: `pdu-ro-${process.pid}`, auth: `auth pass ${process.pid}`, priv: `priv-pass-${process.pid}` };
const policy = { timeoutMs: 2000, retries: 1 };

let ns: Netns;
let ws: { dir: string; cleanup: () => Promise<void> };
let vm: TestVm;
let agent: { pid: number };
let v2: Extract<PlanPower, { type: 'pdu' }>;
let v3: Extract<PlanPower, { type: 'pdu' }>;
const figures: string[] = [];
/** The errors as a user sees them, printed with the figures. */
const words: string[] = [];

const job = (power: typeof v2, steps: PowerJob['steps'], over: Partial<typeof v2> = {}): PowerJob => ({ node: 'node2', power: { ...power, ...over }, policy, steps });
const ok = (r: StepResult | undefined) => expect(r?.ok, r?.error).toBe(true);

/** Polls the VM's power while `during` runs (and `afterMs` longer): the transitions an outlet makes. */
async function watchPower<T>(during: () => Promise<T>, afterMs: number): Promise<{ result: T; seen: VmPower[] }> {
  const seen: VmPower[] = [];
  let done = false;
  const poll = (async () => {
    while (!done) {
      const p = await vm.power();
      if (seen[seen.length - 1] !== p) seen.push(p);
      await new Promise((r) => setTimeout(r, 30));
    }
  })();
  const result = await during();
  await new Promise((r) => setTimeout(r, afterMs));
  done = true;
  await poll;
  return { result, seen };
}

/** Every process's argv (and the snmp tools' environment) seen while `during` runs. */
async function watchProcesses<T>(during: () => Promise<T>): Promise<{ result: T; argvs: string[]; toolEnvs: string[]; confModes: number[] }> {
  const argvs = new Set<string>();
  const toolEnvs = new Set<string>();
  const confModes: number[] = [];
  let done = false;
  const poll = (async () => {
    while (!done) {
      for (const pid of (await readdir('/proc')).filter((d) => /^\d+$/.test(d))) {
        const argv = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
        if (!argv) continue;
        argvs.add(argv.split('\0').join(' '));
        if (/^snmp(get|set)\0/.test(argv)) toolEnvs.add(await readFile(`/proc/${pid}/environ`, 'utf8').catch(() => ''));
      }
      for (const d of (await readdir(tmpdir())).filter((d) => d.startsWith('pc-snmp-'))) {
        const s = await stat(join(tmpdir(), d, 'snmp.conf')).catch(() => null);
        if (s) confModes.push(s.mode & 0o777);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  const result = await during();
  done = true;
  await poll;
  return { result, argvs: [...argvs], toolEnvs: [...toolEnvs], confModes };
}

beforeAll(async () => {
  ws = await workspace('pc-pdu-');
  ns = await createNetns(`pc-pdu-${process.pid}`, `${ADDR}/24`);
  vm = await startTestVm(ws.dir, 'node2');
  const file = async (name: string, value: string) => {
    const f = join(ws.dir, name);
    await writeFile(f, value + '\n', { mode: 0o600 });
    return { file: f };
  };
  const [community, ro, auth, priv] = [await file('community', SECRETS.community), await file('ro', SECRETS.ro), await file('auth', SECRETS.auth), await file('priv', SECRETS.priv)];
  agent = await startPduAgent({
    ns: ns.name, address: ADDR, port: PORT, dir: ws.dir, community, readOnlyCommunity: ro, rebootSeconds: 1,
    v3: [{ user: 'pcadmin', authProtocol: 'SHA', auth, privProtocol: 'AES', priv }, { user: 'pcauth', authProtocol: 'MD5', auth }],
    outlets: { 3: vm },
  });
  const base = { type: 'pdu' as const, host: ADDR, port: PORT, outlets: [3], scheme: { ...APC_OUTLET_CTL }, offSeconds: 1 };
  v2 = { ...base, version: '2c', community };
  v3 = { ...base, version: '3', user: 'pcadmin', authProtocol: 'SHA', auth, privProtocol: 'AES', priv };
});

afterAll(async () => {
  if (figures.length) console.log(`power latency (pdu, lab snmpd):\n${figures.join('\n')}\n\nerrors as reported:\n${words.join('\n')}`);
  if (agent) await stopDaemon(agent.pid);
  await vm?.quit();
  await ns?.stop();
  await ws?.cleanup();
});

describe('pdu driver ↔ the lab PDU (snmpd + APC sPDUOutletCtl handler)', () => {
  it('v2c: status reads the VM, on starts it, off stops it', async () => {
    expect(await vm.power()).toBe('off');
    const r = await powerCalls(ns.name, job(v2, ['status', 'on', 'status', 'off', 'status', 'on']));
    r.forEach(ok);
    expect(r.map((x) => x.result)).toEqual(['off', null, 'on', null, 'off', null]);
    expect(await vm.power()).toBe('running');
    figures.push(latencyTable('pdu v2c', r));
  });

  it('cycle with the APC outlet reboot value: the VM goes off, then on again (a new boot)', async () => {
    await waitFor('a first boot', async () => (await vm.boots()) >= 1);
    const before = await vm.settledBoots();
    const { result, seen } = await watchPower(() => powerCalls(ns.name, job(v2, ['cycle'])), 2500);
    ok(result[0]);
    expect(seen.join(' → ')).toMatch(/running → off → running$/);
    // The firmware's banner is the guest's own word that it started again (TCG on a loaded machine: be patient).
    await waitFor('a new boot banner', async () => (await vm.boots()) > before, 20_000);
    figures.push(latencyTable('pdu v2c apc', result));
  });

  it('cycle without a reboot value (a generic OID scheme): off, offSeconds, on', async () => {
    const generic = { oid: APC_OUTLET_CTL.oid, on: 1, off: 2 };
    const before = await vm.settledBoots();
    const { result, seen } = await watchPower(() => powerCalls(ns.name, job(v2, ['cycle'], { scheme: generic })), 500);
    ok(result[0]);
    expect(result[0]!.ms).toBeGreaterThanOrEqual(1000);
    expect(seen.join(' → ')).toMatch(/running → off → running$/);
    // The firmware's banner is the guest's own word that it started again (TCG on a loaded machine: be patient).
    await waitFor('a new boot banner', async () => (await vm.boots()) > before, 20_000);
    figures.push(latencyTable('pdu v2c generic', result));
  });

  it('v3 authPriv works; a wrong passphrase is refused in the tool words', async () => {
    const r = await powerCalls(ns.name, job(v3, ['status', 'off', 'status', 'on', 'status']));
    r.forEach(ok);
    expect(r.map((x) => x.result)).toEqual(['on', null, 'off', null, 'on']);
    figures.push(latencyTable('pdu v3 authPriv', r));
    const [bad] = await powerCalls(ns.name, job(v3, ['status'], { auth: { env: 'PC_TEST_BAD_AUTH' } }), { PC_TEST_BAD_AUTH: 'wrong passphrase' });
    expect(bad!.ok).toBe(false);
    expect(bad!.error).toContain('Authentication failure (incorrect password, community or key)');
    expect(bad!.error).toContain(AGENT);
    expect(bad!.error).not.toContain('wrong passphrase');
    words.push(bad!.error!);
  });

  it('v3 authNoPriv (MD5) works too', async () => {
    const r = await powerCalls(ns.name, job(v3, ['status', 'off', 'on'], { user: 'pcauth', authProtocol: 'MD5', privProtocol: undefined, priv: undefined }));
    r.forEach(ok);
    expect(r.map((x) => x.result)).toEqual(['on', null, null]);
    expect(await vm.power()).toBe('running');
    figures.push(latencyTable('pdu v3 authNoPriv', r));
  });

  it('a read-only community cannot switch the outlet: refused in the tool words', async () => {
    const [s, off] = await powerCalls(ns.name, job(v2, ['status', 'off'], { community: { file: join(ws.dir, 'ro') } }));
    expect(s).toMatchObject({ ok: true, result: 'on' });
    expect(off!.ok).toBe(false);
    expect(off!.error).toMatch(/Reason: (noAccess|notWritable)/);
    words.push(off!.error!);
    expect(await vm.power()).toBe('running');
  });

  it('a wrong community times out naming the agent; no secret is ever in argv, the conf file is 0600 and removed', async () => {
    const calls = async () => [
      ...(await powerCalls(ns.name, job(v2, ['status'], { community: { env: 'PC_TEST_BAD_COMMUNITY' } }), { PC_TEST_BAD_COMMUNITY: 'not-the-community' })),
      ...(await powerCalls(ns.name, job(v2, ['status', 'off', 'on']))),
      ...(await powerCalls(ns.name, job(v3, ['status', 'off', 'on']))),
    ];
    const { result, argvs, toolEnvs, confModes } = await watchProcesses(calls);
    const [timeout, ...rest] = result;
    expect(timeout!.ok).toBe(false);
    expect(timeout!.error).toContain(`Timeout: No Response from ${AGENT}`);
    expect(timeout!.error).toContain('node2');
    words.push(timeout!.error!);
    rest.forEach(ok);
    // The check can fail: the tools were seen running, with the agent on their command line.
    const tools = argvs.filter((a) => /^snmp(get|set) /.test(a));
    expect(tools.length).toBeGreaterThan(0);
    expect(tools.every((a) => a.includes(AGENT))).toBe(true);
    for (const secret of [...Object.values(SECRETS), 'not-the-community']) {
      expect(argvs.filter((a) => a.includes(secret))).toEqual([]);
      expect(toolEnvs.filter((e) => e.includes(secret))).toEqual([]);
    }
    expect(confModes.length).toBeGreaterThan(0);
    expect(new Set(confModes)).toEqual(new Set([0o600]));
    expect((await readdir(tmpdir())).filter((d) => d.startsWith('pc-snmp-'))).toEqual([]);
  });
});
