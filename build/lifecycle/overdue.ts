/**
 * Missed deadlines: a node still in a phase past its deadline (phoneHome.deadlines, else timeoutMinutes)
 * is power-cycled into the installer again — a new try of the same run, its nonce unchanged — up to
 * phoneHome.retries times; then it is parked (powered off, or linked to rescue and power-cycled into it:
 * phoneHome.park) and marked failed `timeout in <phase> after N tries`. Without a way to power the node
 * the run ends at the first miss: failed `timeout in <phase>`, and the detail says no retry was possible.
 *
 * Power comes in through WatchOptions.power (the CLI wires the lab's VM monitors or the node's legacy
 * reboot command; the power drivers replace that): this module never knows how a node is powered.
 */
import type { Plan, PlanNode } from '../plan/plan.ts';
import { dueAt, deadlineMs, endRun } from './deadlines.ts';
import { switchNodes, type SwitchOptions } from './links.ts';
import { closeRun, readRunRecord } from './runs.ts';
import { readState, transition, updateState, withSwitchLock } from './state.ts';
import type { WatchEvent } from './report.ts';
import type { Target } from './target.ts';

export type WatchPlan = Pick<Plan, 'nodes' | 'profiles' | 'phoneHome'>;

/** How the watcher powers a node: `cycle` into its boot order (the network first), or `off`. */
export type WatchPower = (node: PlanNode, action: 'cycle' | 'off') => Promise<void>;

/** Thrown by a WatchPower that has no way to power this node (as opposed to one that tried and failed). */
export class NoPowerError extends Error {}

interface Ctx {
  plan: WatchPlan;
  root: string;
  target?: Target;
  /** The boot servers' trees: a parked node behind one boots its rescue link there. */
  servers?: SwitchOptions['servers'];
  stateFile: string;
  timeoutMs?: number;
  power?: WatchPower;
  watched: Set<string>;
  serial<T>(fn: () => Promise<T>): Promise<T>;
  emit(e: WatchEvent): WatchEvent;
  /** Drops what the watcher keeps in memory for a node whose run ended. */
  forget(name: string): void;
}

const minutes = (ms: number) => `${Math.round((ms / 60_000) * 100) / 100} min`;
const message = (e: unknown) => (e as Error).message.split('\n')[0];

export async function checkOverdue(c: Ctx): Promise<void> {
  const doc = await readState(c.stateFile);
  const now = Date.now();
  for (const name of c.watched) {
    const s = doc.nodes[name];
    if (!s || (s.state !== 'requested' && s.state !== 'installing') || now < dueAt(s, c.plan.phoneHome, c.timeoutMs)) continue;
    const node = c.plan.nodes.find((n) => n.name === name);
    // Under the switch lock (state.ts withSwitchLock): a reimage/normal between the re-check and the retry or
    // parking would otherwise have its new run marked timed out, or its links switched to rescue.
    if (node) await c.serial(() => withSwitchLock(c.stateFile, () => overdue(c, node)));
  }
}

async function overdue(c: Ctx, node: PlanNode): Promise<void> {
  const at = new Date();
  // Re-check: a report may have arrived since the file was read.
  const s = (await readState(c.stateFile)).nodes[node.name];
  if (!s || (s.state !== 'requested' && s.state !== 'installing') || at.getTime() < dueAt(s, c.plan.phoneHome, c.timeoutMs)) return;
  const phase = s.phase;
  const tries = s.tries ?? 1;
  const maxTries = 1 + c.plan.phoneHome.retries;
  const base = { at: at.toISOString(), source: 'timer' as const, node: node.name, mac: node.mac, ...(s.run ? { run: s.run } : {}) };
  const missed = `missed the ${phase} deadline (${minutes(deadlineMs(c.plan.phoneHome, phase, c.timeoutMs))})`;

  if (!c.power) return fail(c, node, at, phase, `timeout in ${phase}: ${missed}; no power control here, so no retry`, tries);
  if (tries < maxTries) {
    try {
      await c.power(node, 'cycle');
    } catch (e) {
      const why = e instanceof NoPowerError ? `no power control for ${node.name} (${message(e)}), so no retry` : `power-cycling it for try ${tries + 1} failed: ${message(e)}`;
      return fail(c, node, at, phase, `timeout in ${phase}: ${missed}; ${why}`, tries);
    }
    const detail = `${missed}: power-cycled into the installer again, try ${tries + 1} of ${maxTries}`;
    await updateState(c.stateFile, (d) => {
      const { next } = transition(d, node, 'requested', 'requested', at, detail);
      next.tries = tries + 1;
      next.phaseStarted = at.toISOString();
      next.deadline = new Date(at.getTime() + deadlineMs(c.plan.phoneHome, 'requested', c.timeoutMs)).toISOString();
      delete next.progress;
    });
    c.forget(node.name);
    c.emit({ ...base, phase: 'requested', state: 'requested', prev: s.state, detail, tries: tries + 1 });
    return;
  }
  let parked: string;
  try {
    if (c.plan.phoneHome.park === 'rescue') {
      await switchNodes([node], c.plan.profiles.rescue, { root: c.root, ...(c.target ? { target: c.target } : {}), ...(c.servers ? { servers: c.servers } : {}) });
      await c.power(node, 'cycle');
      parked = `linked to ${c.plan.profiles.rescue} and power-cycled into it`;
    } else {
      await c.power(node, 'off');
      parked = 'powered off';
    }
  } catch (e) {
    parked = `not parked: ${e instanceof NoPowerError ? 'no power control' : 'power failed'}: ${message(e)}`;
  }
  return fail(c, node, at, phase, `timeout in ${phase} after ${tries} ${tries === 1 ? 'try' : 'tries'}`, tries, parked);
}

async function fail(c: Ctx, node: PlanNode, at: Date, phase: string, detail: string, tries: number, parked?: string): Promise<void> {
  const s = (await readState(c.stateFile)).nodes[node.name];
  const rec = s?.run ? await readRunRecord(c.stateFile, node.name) : null;
  const { prev } = await updateState(c.stateFile, (d) => {
    const t = transition(d, node, phase, 'failed', at, detail);
    if (parked) t.next.parked = parked;
    endRun(t.next, 'failed', at, rec?.run === s?.run ? rec?.started : undefined);
    return t;
  });
  if (s?.run) await closeRun(c.stateFile, node.name, s.run, 'failed', at);
  c.forget(node.name);
  c.emit({ at: at.toISOString(), source: 'timer', node: node.name, mac: node.mac, phase, state: 'failed', ...(prev ? { prev: prev.state } : {}), detail, tries, ...(s?.run ? { run: s.run } : {}), ...(parked ? { parked } : {}) });
}
