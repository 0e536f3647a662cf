/** The command and ssh drivers with real processes, powerNodes' bound and rows, ipmitool's words, driverFor. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PowerError } from '../build/lib/errors.ts';
import { planCluster } from '../build/plan/plan.ts';
import { commandDriver } from '../build/power/command.ts';
import { ipmitoolArgv, ipmitoolWords } from '../build/power/ipmi.ts';
import { driverFor } from '../build/power/registry.ts';
import { powerNodes } from '../build/power/run.ts';
import { sshDriver } from '../build/power/ssh.ts';
import { validateSpec } from '../build/spec/validate.ts';
import { baseSpec } from './fixtures/specs.ts';
import { workspace } from './helpers/workspace.ts';

let ws: Awaited<ReturnType<typeof workspace>>;
beforeAll(async () => (ws = await workspace('pc-power-drv-')));
afterAll(() => ws.cleanup());

const policy = { timeoutMs: 2000, retries: 0 };
const sh = (script: string) => ['sh', '-c', script, 'sh'];

describe('command driver', () => {
  it('runs each argv without a shell of its own and reads the state from its words or exit code', async () => {
    const state = join(ws.dir, 'state');
    const d = commandDriver({ name: 'n1' }, { type: 'command', on: sh(`echo on > ${state}`), off: sh(`echo off > ${state}`), cycle: sh(`echo cycled >> ${state}.log`), status: sh(`cat ${state}`) }, policy);
    expect([...d.can].sort()).toEqual(['cycle', 'off', 'on', 'status']);
    await d.on();
    expect(await d.status()).toBe('on');
    await d.off();
    expect(await d.status()).toBe('off');
    await d.cycle();
    expect(await readFile(`${state}.log`, 'utf8')).toBe('cycled\n');
    // Exit codes: 0 on, 3 off (LSB status), anything else an error.
    expect(await commandDriver({ name: 'n1' }, { type: 'command', status: sh('exit 3') }, policy).status()).toBe('off');
    expect(await commandDriver({ name: 'n1' }, { type: 'command', status: ['true'] }, policy).status()).toBe('on');
    await expect(commandDriver({ name: 'n1' }, { type: 'command', status: sh('echo broken >&2; exit 2') }, policy).status()).rejects.toThrow("power: n1: sh -c $'echo broken >&2; exit 2' sh exited with code 2: broken");
    // A value is one argv word: a "; rm" in it is never run by a shell.
    const word = commandDriver({ name: 'n1' }, { type: 'command', cycle: ['echo', `x; touch ${state}.pwned`] }, policy);
    await word.cycle();
    await expect(readFile(`${state}.pwned`)).rejects.toThrow();
  });

  it('a missing action is an error with the fix; a hung command ends at the timeout', async () => {
    const d = commandDriver({ name: 'n1' }, { type: 'command', cycle: ['sleep', '10'] }, { timeoutMs: 300, retries: 0 });
    expect(d.can).toEqual(new Set(['cycle']));
    expect(await d.status()).toBe('unknown');
    await expect(d.on()).rejects.toThrow(new PowerError('n1: the spec gives no on command (power.on)\n  hint: add power.on: [argv…] for this node'));
    const t = Date.now();
    await expect(d.cycle()).rejects.toThrow('n1: sleep 10 did not finish within 0.3 s');
    expect(Date.now() - t).toBeLessThan(3000);
  });
});

describe('powerNodes', () => {
  it('runs at most `concurrency` nodes at a time and gives every node a row, failures included', async () => {
    const nodes = ['a', 'b', 'c', 'd'].map((name) => ({ name, driver: commandDriver({ name }, { type: 'command', cycle: ['sleep', '0.4'] }, policy) }));
    const t = Date.now();
    const rows = await powerNodes([...nodes, { name: 'e', driver: new PowerError('e: the pdu power driver is not available in this build') }, { name: 'f', driver: sshDriver({ name: 'f' }, policy) }], 'cycle', { concurrency: 2 });
    // 4 × 0.4 s, two at a time: at least 0.8 s; all at once would be 0.4 s.
    expect(Date.now() - t).toBeGreaterThanOrEqual(800);
    expect(rows.slice(0, 4).map((r) => [r.node, r.driver, r.before, r.after, r.ok])).toEqual(['a', 'b', 'c', 'd'].map((n) => [n, 'command', 'unknown', 'unknown', true]));
    expect(rows[4]).toEqual({ node: 'e', driver: null, describe: null, before: null, after: null, ms: 0, ok: false, error: 'e: the pdu power driver is not available in this build' });
    const on = await powerNodes([{ name: 'f', driver: sshDriver({ name: 'f' }, policy) }], 'on', { concurrency: 1 });
    expect(on[0]).toMatchObject({ driver: 'ssh', ok: false, error: 'ssh f systemctl reboot cannot power on' });
  });
});

describe('ipmi', () => {
  it("keeps ipmitool's real errors and drops only its known noise", () => {
    const noisy = 'Loading IANA PEN Registry...\nRunning Get VSO Capabilities my_addr 0x20, transit 0, target 0x20\nInvalid completion code received: Invalid command\nDiscovered IPMB address 0x0\nUnable to Get Channel Cipher Suites\n';
    expect(ipmitoolWords(noisy)).toBe('');
    expect(ipmitoolWords('Loading IANA PEN Registry...\n> RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session\n')).toBe('RAKP 2 HMAC is invalid; Error: Unable to establish IPMI v2 / RMCP+ session');
    // The same completion-code line alone is a real error and stays.
    expect(ipmitoolWords('Invalid completion code received: Invalid command\n')).toBe('Invalid completion code received: Invalid command');
  });

  it('puts no secret in argv, and every value after its option', () => {
    const argv = ipmitoolArgv({ type: 'ipmi', host: 'bmc1', port: 623, user: 'ADMIN', password: { file: '/etc/pc/pw' }, interface: 'lanplus', cipherSuite: 17 }, { timeoutMs: 15_000, retries: 2 });
    expect(argv).toEqual(['ipmitool', '-v', '-I', 'lanplus', '-H', 'bmc1', '-p', '623', '-U', 'ADMIN', '-E', '-C', '17', '-N', '7', '-R', '1']);
  });
});

describe('driverFor', () => {
  const nodes = (mutate: (s: Record<string, any>) => void) => {
    const s = baseSpec();
    mutate(s);
    return planCluster(validateSpec(s)).nodes;
  };
  it('picks the driver by the planned power; a lab VM without a BMC stand-in is powered through its monitor', () => {
    const [n1, n2] = nodes((s) => ((s.nodes[0].power = { type: 'ipmi', host: 'b', user: 'u', passwordEnv: 'P' }), (s.nodes[1].reboot = ['x'])));
    expect(driverFor(n1!).kind).toBe('ipmi');
    expect(driverFor(n2!).kind).toBe('command');
    expect(driverFor(n1!, { lab: { name: 'node1', monitor: '/m', pid: 1 } }).kind).toBe('lab');
    expect(driverFor(n1!, { lab: { name: 'node1', monitor: '/m', pid: 1, bmc: true } }).kind).toBe('ipmi');
    const [r] = nodes((s) => (s.nodes[0].power = { type: 'redfish', url: 'https://b', user: 'u', passwordEnv: 'P' }));
    expect(driverFor(r!).kind).toBe('redfish');
    const [p] = nodes((s) => (s.nodes[0].power = { type: 'pdu', host: 'pdu1', communityEnv: 'C', outlets: [3] }));
    expect(driverFor(p!)).toMatchObject({ kind: 'pdu', describe: expect.stringContaining('outlet 3') });
  });
});
