/**
 * Discovery and enrolment without a VM: the inventory library run by bash over a machine described as
 * files (/sys, /proc and /dev/disk under a temp dir: two disks with serials and by-id/by-path links, a
 * NIC, hostile DMI strings), the disk selector proposal, the JSON spec edited in place and the refusals,
 * and the CLI over stored inventories. The QEMU tier boots a real unknown machine through the same code.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { discoverVars, renderAutorun } from '../build/render/autorun.ts';
import { readScriptSources } from '../build/render/scripts.ts';
import { parseInventory, readInventories, storeInventory, type Inventory } from '../build/lifecycle/inventory.ts';
import { enrollJsonSpec, entryAsTs, nodeEntry, proposeDiskTarget } from '../build/lifecycle/enroll.ts';
import { UsageError } from '../build/lib/errors.ts';
import { planCluster } from '../build/plan/plan.ts';
import { validateSpec } from '../build/spec/validate.ts';
import { baseSpec } from './fixtures/specs.ts';
import { workspace } from './helpers/workspace.ts';

let ws: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  ws = await workspace('pc-discover-');
  await chmod(ws.dir, 0o755);
});
afterAll(() => ws.cleanup());

const GiB = 1024 ** 3;
const HOSTILE = 'Acme "Quoted" \\ back\tslash $(touch /tmp/x)';

/** A machine as files: vda (20 GiB, serial SER-A, one partition), vdb (40 GiB, serial SER-B), sr0, one NIC. */
async function fakeMachine(dir: string): Promise<{ sys: string; dev: string; proc: string }> {
  const sys = join(dir, 'sys');
  const dev = join(dir, 'dev');
  const proc = join(dir, 'proc');
  const disk = async (name: string, sectors: number, serial: string, model: string) => {
    await mkdir(join(sys, 'block', name, 'device'), { recursive: true });
    await mkdir(join(sys, 'block', name, 'queue'), { recursive: true });
    await writeFile(join(sys, 'block', name, 'size'), `${sectors}\n`);
    await writeFile(join(sys, 'block', name, 'serial'), `${serial}\n`);
    await writeFile(join(sys, 'block', name, 'device', 'model'), `${model}   \n`);
    await writeFile(join(sys, 'block', name, 'queue', 'rotational'), '0\n');
    await writeFile(join(sys, 'block', name, 'removable'), '0\n');
    await writeFile(join(dev, name), '');
    await symlink(`../../${name}`, join(dev, 'disk', 'by-id', `virtio-${serial}`));
  };
  await mkdir(join(dev, 'disk', 'by-id'), { recursive: true });
  await mkdir(join(dev, 'disk', 'by-path'), { recursive: true });
  await disk('vda', (20 * GiB) / 512, 'SER-A', 'QEMU disk');
  await disk('vdb', (40 * GiB) / 512, 'SER-B', HOSTILE);
  await mkdir(join(sys, 'block', 'vda', 'vda1'));
  await writeFile(join(dev, 'vda1'), '');
  await symlink('../../vda1', join(dev, 'disk', 'by-id', 'virtio-SER-A-part1'));
  await symlink('../../vda', join(dev, 'disk', 'by-path', 'pci-0000:00:05.0'));
  await mkdir(join(sys, 'block', 'sr0', 'device'), { recursive: true });
  await mkdir(join(sys, 'block', 'loop0'), { recursive: true });
  const nic = join(sys, 'class', 'net', 'ens3');
  await mkdir(join(nic, 'device'), { recursive: true });
  await mkdir(join(sys, 'bus', 'virtio', 'drivers', 'virtio_net'), { recursive: true });
  await symlink(join(sys, 'bus', 'virtio', 'drivers', 'virtio_net'), join(nic, 'device', 'driver'));
  await writeFile(join(nic, 'address'), '52:54:00:aa:bb:01\n');
  await writeFile(join(nic, 'speed'), '1000\n');
  await writeFile(join(nic, 'operstate'), 'up\n');
  await mkdir(join(sys, 'class', 'net', 'lo'), { recursive: true });
  await writeFile(join(sys, 'class', 'net', 'lo', 'address'), '00:00:00:00:00:00\n');
  await mkdir(join(sys, 'class', 'dmi', 'id'), { recursive: true });
  await writeFile(join(sys, 'class', 'dmi', 'id', 'sys_vendor'), `${HOSTILE}\n`);
  await writeFile(join(sys, 'class', 'dmi', 'id', 'product_name'), 'Standard PC (i440FX + PIIX, 1996)\n');
  await writeFile(join(sys, 'class', 'dmi', 'id', 'product_serial'), 'SN-0001\n');
  await mkdir(proc, { recursive: true });
  await writeFile(join(proc, 'cpuinfo'), 'processor\t: 0\nmodel name\t: QEMU Virtual CPU version 2.5+\n\nprocessor\t: 1\nmodel name\t: QEMU Virtual CPU version 2.5+\n');
  await writeFile(join(proc, 'meminfo'), 'MemTotal:        1000000 kB\nMemFree:          500000 kB\n');
  return { sys, dev, proc };
}

function bash(script: string, env: Record<string, string>): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn('bash', ['-c', script], { env: { PATH: process.env.PATH!, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('close', (code) => resolve({ code, out, err }));
  });
}

function plan(mutate: (s: Record<string, any>) => void = () => {}) {
  const s = baseSpec();
  s.boot.discover = true;
  mutate(s);
  return planCluster(validateSpec(s));
}

let inventory: Inventory;

describe('the inventory, read from the machine without writing', () => {
  it('lists exactly the disks with their by-id and by-path names, the NIC that booted, CPUs, RAM, firmware; hostile strings stay data', async () => {
    const m = await fakeMachine(join(ws.dir, 'machine'));
    const src = await readScriptSources('discover');
    const script = renderAutorun({ title: 'test', specHash: 'x', vars: discoverVars(plan()), libraries: src.libraries, main: { name: 'test', text: 'inventory_json 52:54:00:aa:bb:01' } });
    const r = await bash(script, { PC_SYSFS: m.sys, PC_DEVFS: m.dev, PC_PROCFS: m.proc });
    expect(r.code, r.err).toBe(0);
    const parsed = parseInventory(Buffer.from(r.out));
    expect(typeof parsed, String(parsed)).toBe('object');
    inventory = parsed as Inventory;
    expect(inventory.disks.map((d) => [d.name, d.sizeBytes, d.serial, d.byId, d.byPath, d.partitions])).toEqual([
      ['vda', 20 * GiB, 'SER-A', ['virtio-SER-A'], ['pci-0000:00:05.0'], 1],
      ['vdb', 40 * GiB, 'SER-B', ['virtio-SER-B'], [], 0],
    ]);
    expect(inventory.disks[0]!.model).toBe('QEMU disk');
    // The tab is a control character: dropped; quotes, backslash and $( ) are kept as text.
    expect(inventory.disks[1]!.model).toBe('Acme "Quoted" \\ backslash $(touch /tmp/x)');
    expect(inventory.dmi).toMatchObject({ vendor: 'Acme "Quoted" \\ backslash $(touch /tmp/x)', product: 'Standard PC (i440FX + PIIX, 1996)', serial: 'SN-0001' });
    expect(inventory.nics).toEqual([{ name: 'ens3', mac: '52:54:00:aa:bb:01', driver: 'virtio_net', speedMbps: 1000, operstate: 'up', boot: true }]);
    expect(inventory.cpu).toEqual({ model: 'QEMU Virtual CPU version 2.5+', count: 2 });
    expect(inventory.memoryBytes).toBe(1_000_000 * 1024);
    expect(inventory.firmware).toBe('bios');
    expect(inventory.bootMac).toBe('52:54:00:aa:bb:01');
  });

  it('the discover script is shellcheck-clean', async () => {
    const src = await readScriptSources('discover');
    const script = renderAutorun({ title: 'discover', specHash: 'x', vars: discoverVars(plan()), ...src });
    const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const p = spawn('shellcheck', ['-s', 'bash', '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.on('close', (code) => resolve({ code, out }));
      p.stdin.end(script);
    });
    expect(r.out).toBe('');
    expect(r.code).toBe(0);
  });

  it('refuses a body that is not an inventory, naming what is wrong', () => {
    expect(parseInventory(undefined)).toBe('an inventory report needs its JSON body');
    expect(parseInventory(Buffer.from('{'))).toMatch(/^the inventory is not JSON/);
    expect(parseInventory(Buffer.from(JSON.stringify({ ...inventory, disks: 'x' })))).toBe('the inventory does not have the expected shape: /disks must be array');
    expect(parseInventory(Buffer.from(JSON.stringify({ ...inventory, firmware: 'coreboot' })))).toMatch(/^the inventory does not have the expected shape: \/firmware /);
  });
});

describe('the install disk', () => {
  it('onlyNonRemovable on a two-disk machine: warns, and proposes the first fitting disk by its serial id', () => {
    const p = proposeDiskTarget(inventory, { onlyNonRemovable: true }, 8 * GiB);
    expect(p.disk.name).toBe('vda');
    expect(p.diskTarget).toEqual({ byId: 'virtio-SER-A' });
    expect(p.clusterMatches).toEqual(['vda', 'vdb']);
    expect(p.warnings).toEqual(["the cluster's disk.target (onlyNonRemovable) matches 2 disks of this machine (vda, vdb): its installer would refuse, so the node gets its own diskTarget"]);
  });

  it('a cluster selector that picks exactly one fitting disk needs no diskTarget of its own', () => {
    const p = proposeDiskTarget(inventory, { byId: 'virtio-SER-B' }, 8 * GiB);
    expect(p.diskTarget).toBeUndefined();
    expect(p).toMatchObject({ clusterMatches: ['vdb'], warnings: [] });
    expect(p.disk.name).toBe('vdb');
  });

  it('the layout fits only the larger disk: that one; no disk fits: refused with the sizes', () => {
    expect(proposeDiskTarget(inventory, { onlyNonRemovable: true }, 30 * GiB).diskTarget).toEqual({ byId: 'virtio-SER-B' });
    expect(() => proposeDiskTarget(inventory, { onlyNonRemovable: true }, 100 * GiB)).toThrow(/needs a non-removable disk of at least 107374182400 bytes \(the machine has: vda 21474836480 bytes, vdb 42949672960 bytes\)/);
  });
});

describe('enroll', () => {
  const specText = (indent: string) => {
    const s = baseSpec();
    s.boot.discover = true;
    return JSON.stringify(s, null, indent) + '\n';
  };

  it('a JSON spec: only the new node is added, formatting kept, and the result validates', async () => {
    const file = join(ws.dir, 'cluster.json');
    const before = specText('    ');
    await writeFile(file, before);
    const p = plan();
    const entry = nodeEntry({ name: 'node7', mac: '52-54-00-AA-BB-01', ip: '192.168.10.17' }, inventory, proposeDiskTarget(inventory, p.disk.target, p.disk.minBytes));
    await enrollJsonSpec(file, entry);
    const after = await readFile(file, 'utf8');
    // Remove the inserted element and the comma before it: exactly the old text remains.
    const inserted = after.match(/,\n {8}\{\n {12}"name": "node7",[\s\S]*?\n {8}\}/)?.[0];
    expect(inserted, after).toBeDefined();
    expect(after.replace(inserted!, '')).toBe(before);
    const spec = validateSpec(JSON.parse(after));
    expect(spec.nodes.at(-1)).toMatchObject({ name: 'node7', mac: '52:54:00:aa:bb:01', ip: '192.168.10.17', firmware: 'bios', diskTarget: { byId: 'virtio-SER-A' } });
    expect(planCluster(spec).nodes.at(-1)!.diskTarget).toEqual({ byId: 'virtio-SER-A' });
  });

  it('refuses a duplicate MAC, name or IP, naming the entry that has it, and leaves the file as it was', async () => {
    const file = join(ws.dir, 'dup.json');
    await writeFile(file, specText('  '));
    const before = await readFile(file, 'utf8');
    const e = (o: object) => ({ name: 'node7', mac: '52:54:00:aa:bb:01', firmware: 'bios' as const, ...o });
    const tries: [object, string][] = [
      [{ mac: 'C0:3F:D5:60:E5:A1' }, 'MAC c0:3f:d5:60:e5:a1 is already in the spec: nodes[0] (node1, c0:3f:d5:60:e5:a1, 192.168.10.11); nothing was changed'],
      [{ name: 'node2' }, 'the name node2 is already in the spec: nodes[1] (node2, C0-3F-D5-60-CD-8B); nothing was changed'],
      [{ ip: '192.168.10.10' }, 'the IP 192.168.10.10 is already in the spec: admin (node0, 192.168.10.10); nothing was changed'],
      [{ mac: 'c4:04:15:90:bf:b4' }, 'MAC c4:04:15:90:bf:b4 is already in the spec: appliances[0] (switch, c4:04:15:90:bf:b4); nothing was changed'],
    ];
    for (const [o, message] of tries) {
      const err = await enrollJsonSpec(file, e(o)).catch((x: unknown) => x);
      expect(err).toBeInstanceOf(UsageError);
      expect((err as Error).message.split('\n')[0]).toBe(message);
    }
    // An entry the rules refuse (an IP outside the cluster's subnet): the whole spec is validated first.
    const bad = await enrollJsonSpec(file, e({ ip: '10.0.0.5' })).catch((x: unknown) => x);
    expect((bad as Error).message).toMatch(/with node7 added the spec would not be valid; nothing was changed\n[\s\S]*nodes\[2\]\.ip/);
    expect(await readFile(file, 'utf8')).toBe(before);
  });

  it('a TypeScript spec gets the entry to paste', () => {
    expect(entryAsTs({ name: 'node7', mac: '52:54:00:aa:bb:01', firmware: 'uefi', diskTarget: { byId: 'virtio-SER-A' } })).toBe("{ name: 'node7', mac: '52:54:00:aa:bb:01', firmware: 'uefi', diskTarget: { byId: 'virtio-SER-A' } },");
  });

  it('inventories are kept per MAC, the latest wins', async () => {
    const state = join(ws.dir, 'state', 'state.json');
    await storeInventory(state, '52-54-00-AA-BB-01', inventory, '192.168.10.140', new Date('2026-01-01T00:00:00Z'));
    await storeInventory(state, '52:54:00:aa:bb:01', { ...inventory, memoryBytes: 1 }, '192.168.10.141', new Date('2026-01-02T00:00:00Z'));
    const all = await readInventories(state);
    expect(all.map((x) => [x.mac, x.seenAt, x.from, x.inventory.memoryBytes])).toEqual([['52:54:00:aa:bb:01', '2026-01-02T00:00:00.000Z', '192.168.10.141', 1]]);
  });
});
