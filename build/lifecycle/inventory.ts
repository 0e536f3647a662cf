/**
 * Machine inventories: what a machine reported about itself (common/lib/30-inventory.sh) when it booted
 * the discover profile, or, later, its installer. The body comes from the network, so it is validated
 * against a schema and size-limited before it is stored, one JSON file per MAC beside the state file
 * (`<state dir>/inventory/<mac>.json`); `portacluster discovered` lists the ones the spec does not know and
 * `portacluster enroll` turns one into a node.
 */
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Type as T, type Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { atomicWrite } from '../lib/atomic.ts';
import { parseMac } from '../spec/values.ts';

const Str = (max = 256) => T.String({ maxLength: max });
const Count = T.Union([T.Integer({ minimum: 0 }), T.Null()]);

export const InventoryDisk = T.Object({
  name: Str(64),
  path: Str(128),
  sizeBytes: Count,
  model: Str(),
  serial: Str(),
  rotational: T.Boolean(),
  removable: T.Boolean(),
  byId: T.Array(Str(), { maxItems: 64 }),
  byPath: T.Array(Str(), { maxItems: 64 }),
  partitionTable: T.Union([Str(32), T.Null()]),
  partitions: Count,
});

export const InventorySchema = T.Object({
  version: T.Literal(1),
  bootMac: Str(32),
  firmware: T.Union([T.Literal('bios'), T.Literal('uefi')]),
  dmi: T.Object({ vendor: Str(), product: Str(), serial: Str(), boardVendor: Str(), boardName: Str() }),
  cpu: T.Object({ model: Str(), count: Count }),
  memoryBytes: Count,
  disks: T.Array(InventoryDisk, { maxItems: 256 }),
  nics: T.Array(
    T.Object({ name: Str(64), mac: Str(32), driver: Str(64), speedMbps: Count, operstate: Str(32), boot: T.Boolean() }),
    { maxItems: 256 },
  ),
  bmc: T.Union([T.Object({ ip: Str(64), mac: Str(32) }), T.Null()]),
});

export type Inventory = Static<typeof InventorySchema>;
export type InventoryDiskT = Static<typeof InventoryDisk>;

/** An inventory as kept: when it came, from which address, and what it says. */
export interface StoredInventory {
  mac: string;
  seenAt: string;
  from: string | null;
  inventory: Inventory;
}

export const INVENTORY_BODY_LIMIT = 1024 * 1024;

const validate = new Ajv({ allErrors: false, strict: true }).compile(InventorySchema);

/** The body of an `inventory` report → an Inventory, or a message saying what is wrong with it. */
export function parseInventory(body: Buffer | undefined): Inventory | string {
  if (!body?.length) return 'an inventory report needs its JSON body';
  if (body.length > INVENTORY_BODY_LIMIT) return `an inventory of ${body.length} bytes is larger than ${INVENTORY_BODY_LIMIT}`;
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (e) {
    return `the inventory is not JSON: ${(e as Error).message}`;
  }
  if (!validate(value)) {
    const err = validate.errors?.[0];
    return `the inventory does not have the expected shape: ${err?.instancePath || '/'} ${err?.message ?? ''}`.trim();
  }
  return value as Inventory;
}

export const inventoryDir = (stateFile: string): string => join(dirname(stateFile), 'inventory');

/** Stores the latest inventory of a MAC (atomically: a reader sees the old or the new one). */
export async function storeInventory(stateFile: string, mac: string, inventory: Inventory, from: string | null, at = new Date()): Promise<string> {
  const norm = parseMac(mac);
  if (!norm) throw new Error(`not a MAC address: ${JSON.stringify(mac)}`);
  const dir = inventoryDir(stateFile);
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${norm.replace(/:/g, '-')}.json`);
  const doc: StoredInventory = { mac: norm, seenAt: at.toISOString(), from, inventory };
  await atomicWrite(file, JSON.stringify(doc, null, 2) + '\n', { durable: true });
  return file;
}

export async function readInventories(stateFile: string): Promise<StoredInventory[]> {
  const dir = inventoryDir(stateFile);
  const names = await readdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [] as string[];
    throw e;
  });
  const out: StoredInventory[] = [];
  for (const n of names.filter((x) => /^[0-9a-f]{2}(-[0-9a-f]{2}){5}\.json$/.test(x)).sort()) {
    const doc = JSON.parse(await readFile(join(dir, n), 'utf8')) as StoredInventory;
    out.push(doc);
  }
  return out;
}

export async function readInventory(stateFile: string, mac: string): Promise<StoredInventory | null> {
  const norm = parseMac(mac);
  if (!norm) return null;
  const text = await readFile(join(inventoryDir(stateFile), `${norm.replace(/:/g, '-')}.json`), 'utf8').catch(() => null);
  return text ? (JSON.parse(text) as StoredInventory) : null;
}

const GiB = 1024 ** 3;

/** One line about a machine: vendor/model, CPUs, RAM, disks, firmware. */
export function headline(inv: Inventory): { model: string; cpus: string; memory: string; disks: string; firmware: string } {
  const model = [inv.dmi.vendor, inv.dmi.product].filter((x) => x && !/^(to be filled|not specified|default string)/i.test(x)).join(' ') || 'unknown model';
  const size = (b: number | null) => (b === null ? '?' : b >= GiB ? `${(b / GiB).toFixed(b >= 100 * GiB ? 0 : 1)} GiB` : `${Math.round(b / 1024 ** 2)} MiB`);
  return {
    model,
    cpus: `${inv.cpu.count ?? '?'}× ${inv.cpu.model || 'unknown CPU'}`,
    memory: size(inv.memoryBytes),
    disks: inv.disks.map((d) => `${d.name} ${size(d.sizeBytes)}${d.rotational ? ' hdd' : ''}${d.removable ? ' removable' : ''}`).join(', ') || 'no disk',
    firmware: inv.firmware,
  };
}
