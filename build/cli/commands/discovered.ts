/** discovered: machines that booted the discover profile and reported an inventory, and are not in the spec. */
import { headline, readInventories } from '../../lifecycle/inventory.ts';
import { defaultStateFile } from '../../lifecycle/state.ts';
import { defineCommand, emit } from '../command.ts';
import { ago, table } from '../format.ts';
import { loadPlan } from '../load-plan.ts';
import { CONFIG, JSON_OUT, ROOT, STATE } from '../options.ts';

export const command = defineCommand(
  {
    name: 'discovered',
    summary: [
      'Machines that booted the discover profile (boot.discover: true) and reported their inventory, and that the',
      'spec does not know yet: vendor and model, CPUs, RAM, disks, boot MAC, firmware and when they were seen.',
      '--all lists the machines the spec knows too. Then: portacluster enroll <mac> --name <node>.',
    ].join('\n'),
    options: { config: CONFIG, root: ROOT, state: STATE, all: { type: 'boolean', description: 'also list machines the spec already has as nodes' }, json: JSON_OUT },
    examples: ['portacluster discovered', 'portacluster discovered --json'],
  },
  async (values) => {
    const plan = await loadPlan(values.config, values.root);
    const root = values.root ?? plan.admin.servedRoot;
    const known = new Map(plan.nodes.map((n) => [n.mac, n.name]));
    const all = await readInventories(values.state ?? defaultStateFile(root, plan.admin.servedRoot));
    const machines = all
      .filter((m) => values.all || !known.has(m.mac))
      .map((m) => ({ mac: m.mac, node: known.get(m.mac) ?? null, seenAt: m.seenAt, from: m.from, ...headline(m.inventory), inventory: m.inventory }));
    const rows = [['MAC', 'NODE', 'MODEL', 'CPUS', 'RAM', 'DISKS', 'FIRMWARE', 'SEEN']];
    for (const m of machines) rows.push([m.mac, m.node ?? '-', m.model, m.cpus, m.memory, m.disks, m.firmware, `${m.seenAt.replace(/\.\d+Z$/, 'Z')} (${ago(m.seenAt)})`]);
    const none = values.all ? 'no machine has reported an inventory' : 'no machine outside the spec has reported an inventory (boot.discover: true makes unknown machines report)';
    emit(!!values.json, { machines }, machines.length ? table(rows) : none);
    return 0;
  },
);
