/**
 * One power action over many nodes, in parallel with a bound (p-limit): BMCs answer slowly and some lock
 * out a flood of sessions. Each node gets a row — its driver, the state before and after, the time taken and
 * the error in the tool's words — and one node's failure never stops the others.
 */
import pLimit from 'p-limit';
import type { PowerAction, PowerDriver, PowerKind, PowerState } from './types.ts';

/** How long the state is read again after an action until it shows the expected state. */
const SETTLE_MS = 15_000;

export interface PowerRow {
  node: string;
  driver: PowerKind | null;
  describe: string | null;
  before: PowerState | null;
  after: PowerState | null;
  ms: number;
  ok: boolean;
  error?: string;
}

export interface PowerRunOptions {
  concurrency: number;
  /** Called as each node finishes (a heartbeat for long runs). */
  onRow?(row: PowerRow, done: number, total: number): void;
}

/** `drivers` maps each node to its driver, or to the error that made one impossible (a driver not in this build). */
export async function powerNodes(nodes: { name: string; driver: PowerDriver | Error }[], action: PowerAction, o: PowerRunOptions): Promise<PowerRow[]> {
  const limit = pLimit(Math.max(1, o.concurrency));
  let done = 0;
  return Promise.all(
    nodes.map((n) =>
      limit(async () => {
        const row = await powerOne(n.name, n.driver, action);
        o.onRow?.(row, ++done, nodes.length);
        return row;
      }),
    ),
  );
}

async function powerOne(node: string, d: PowerDriver | Error, action: PowerAction): Promise<PowerRow> {
  const started = performance.now();
  if (d instanceof Error) return { node, driver: null, describe: null, before: null, after: null, ms: 0, ok: false, error: d.message.replace(/^power: /, '') };
  const row: PowerRow = { node, driver: d.kind, describe: d.describe, before: null, after: null, ms: 0, ok: false };
  const ms = () => Math.round(performance.now() - started);
  try {
    if (!d.can.has(action)) throw new Error(`${d.describe} cannot ${action === 'status' ? 'tell the power state' : `power ${action}`}`);
    // A driver that cannot tell its state reports unknown rather than failing the row.
    const state = async () => (d.can.has('status') ? d.status() : 'unknown' as const);
    row.before = await state();
    if (action !== 'status') {
      await d[action]();
      // BMCs acknowledge before the chassis follows (a cycle is off, a pause, on): read until it settles.
      const expected = action === 'off' ? 'off' : 'on';
      const settleBy = performance.now() + SETTLE_MS;
      for (;;) {
        row.after = await state();
        if (row.after === expected || row.after === 'unknown' || performance.now() > settleBy) break;
        await new Promise((r) => setTimeout(r, 500));
      }
    } else row.after = row.before;
    row.ok = true;
  } catch (e) {
    row.error = (e as Error).message.replace(/^power: /, '');
  }
  row.ms = ms();
  return row;
}
