/**
 * power on|off|cycle|status <node…|--all>: each node through its driver (build/power/registry.ts), in
 * parallel with a bound, one row per node: driver, state before and after, time, error in the tool's words.
 * Exit 1 when any node failed.
 */
import { UsageError } from '../../lib/errors.ts';
import { formatElapsed, HEARTBEAT_MS } from '../../lib/log.ts';
import { resolveNodes } from '../../lifecycle/links.ts';
import { driverFor } from '../../power/registry.ts';
import { powerNodes, type PowerRow } from '../../power/run.ts';
import { DEFAULT_CALL_POLICY, type PowerAction } from '../../power/types.ts';
import { defineCommand, emit } from '../command.ts';
import { table } from '../format.ts';
import { labPower, labVmFor, runInherited } from '../lab-power.ts';
import { loadPlan } from '../load-plan.ts';
import { CONFIG, JSON_OUT } from '../options.ts';

const ACTIONS: PowerAction[] = ['on', 'off', 'cycle', 'status'];
const DONE: Record<PowerAction, string> = { on: 'powered on', off: 'powered off', cycle: 'power-cycled', status: 'read' };

function positiveInt(name: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} wants a whole number ≥ ${min} (got ${JSON.stringify(value)})`);
  return n;
}

export const command = defineCommand(
  {
    name: 'power',
    positionals: 'on|off|cycle|status <node…|--all>',
    summary: [
      "Power nodes on, off, around (cycle: a node that is off is powered on) or read their state, through each",
      "node's power spec (nodes[].power, else the cluster-wide power, else nodes[].reboot, else ssh: reboot only).",
      'Nodes run in parallel (--concurrency); each gets a row with its driver, the state before and after, the',
      'time and the error in the tool\'s words. Exits 1 when any node failed. In a lab (`lab up`) a node is powered',
      "through its VM, or through the BMC stand-in the lab gave it (then this runs inside the lab's namespace).",
    ].join('\n'),
    options: {
      config: CONFIG,
      all: { type: 'boolean', description: 'every node of the spec' },
      concurrency: { type: 'string', arg: 'N', description: `nodes at a time (default 8)` },
      timeout: { type: 'string', arg: 'SECONDS', description: `per BMC call (default ${DEFAULT_CALL_POLICY.timeoutMs / 1000})` },
      retries: { type: 'string', arg: 'N', description: `times a call to a BMC that does not answer is tried again (default ${DEFAULT_CALL_POLICY.retries})` },
      json: JSON_OUT,
    },
    examples: ['portacluster power status --all', 'portacluster power cycle node3 node4', 'portacluster power off --all --json'],
  },
  async (values, positionals) => {
    const [action, ...selectors] = positionals;
    if (!ACTIONS.includes(action as PowerAction)) throw new UsageError(`power wants one of ${ACTIONS.join(', ')} first (got ${JSON.stringify(action ?? '')})\n  see: portacluster power --help`);
    const concurrency = positiveInt('concurrency', values.concurrency, 8);
    const policy = { timeoutMs: positiveInt('timeout', values.timeout, DEFAULT_CALL_POLICY.timeoutMs / 1000) * 1000, retries: positiveInt('retries', values.retries, DEFAULT_CALL_POLICY.retries, 0) };
    const plan = await loadPlan(values.config);
    const nodes = resolveNodes(plan.nodes, selectors, !!values.all);
    const { lab, reexec } = await labPower(plan.cluster, nodes);
    if (reexec) return runInherited(reexec);

    const drivers = nodes.map((n) => {
      const vm = labVmFor(lab, n);
      try {
        // The lab's nodes are VMs or nothing: any other driver would only time out.
        if (vm === null) throw new Error(`no VM for ${n.name} in the lab (lab up started ${lab!.vms.map((v) => v.name).join(', ')})`);
        return { name: n.name, driver: driverFor(n, { lab: vm, policy }) };
      } catch (e) {
        return { name: n.name, driver: e as Error };
      }
    });
    const started = Date.now();
    const pending = new Set(nodes.map((n) => n.name));
    // A long run (slow BMCs, many nodes) says it is alive on stderr, which --json leaves free.
    const beat = setInterval(() => process.stderr.write(`power ${action}: ${nodes.length - pending.size}/${nodes.length} done, waiting for ${[...pending].join(', ')} (${formatElapsed(Date.now() - started)})\n`), HEARTBEAT_MS);
    beat.unref();
    let rows: PowerRow[];
    try {
      rows = await powerNodes(drivers, action as PowerAction, { concurrency, onRow: (r) => pending.delete(r.node) });
    } finally {
      clearInterval(beat);
    }
    const failed = rows.filter((r) => !r.ok);
    const text = [
      table([
        ['NODE', 'DRIVER', 'BEFORE', 'AFTER', 'TIME', 'RESULT'],
        ...rows.map((r) => [r.node, r.describe ?? '-', r.before ?? '-', r.after ?? '-', `${(r.ms / 1000).toFixed(1)}s`, r.ok ? 'ok' : 'FAILED']),
      ]),
      ...failed.map((r) => `${r.node}: ${r.error}`),
      `${rows.length - failed.length}/${rows.length} node${rows.length === 1 ? '' : 's'} ${DONE[action as PowerAction]}${failed.length ? `, ${failed.length} failed` : ''}`,
    ].join('\n');
    emit(!!values.json, { ok: failed.length === 0, action, rows }, text);
    return failed.length ? 1 : 0;
  },
);
