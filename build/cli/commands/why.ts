/** why <node>: a node's boot chain from the spec, the served tree and the state file, and where it breaks. */
import { UsageError } from '../../lib/errors.ts';
import { resolveNodes } from '../../lifecycle/links.ts';
import { defaultStateFile, readState } from '../../lifecycle/state.ts';
import { explainNode, whyText } from '../../lifecycle/why.ts';
import { headline, readInventory } from '../../lifecycle/inventory.ts';
import { defineCommand, emit } from '../command.ts';
import { loadPlan } from '../load-plan.ts';
import { CONFIG, JSON_OUT, ROOT, STATE } from '../options.ts';

export const command = defineCommand(
  {
    name: 'why',
    positionals: '<node>',
    summary: [
      "Explain what a node boots and why: its DHCP entry, the loader its firmware gets, its per-MAC link and the",
      'profile behind it, the kernel and initrd that profile boots, its last report, and what `done` will do.',
      'Names the first broken link of that chain (missing file, dangling link, MAC not in dnsmasq.conf); exit 1 then.',
    ].join('\n'),
    options: { config: CONFIG, root: ROOT, state: STATE, json: JSON_OUT },
    examples: ['portacluster why node3', 'portacluster why c0:3f:d5:60:e5:b9 --root dist --json'],
  },
  async (values, positionals) => {
    if (positionals.length !== 1) throw new UsageError('why takes one node (a name or a MAC)\n  see: portacluster why --help');
    const plan = await loadPlan(values.config, values.root);
    const root = values.root ?? plan.admin.servedRoot;
    const [node] = resolveNodes(plan.nodes, positionals);
    const doc = await readState(values.state ?? defaultStateFile(root, plan.admin.servedRoot));
    const r = await explainNode(plan, node!, root, doc.nodes[node!.name]);
    // What the machine last said it is (discovery, or its installer's start), beside the chain.
    const inv = await readInventory(values.state ?? defaultStateFile(root, plan.admin.servedRoot), node!.mac);
    const h = inv ? headline(inv.inventory) : null;
    const seen = inv && h ? `\nmachine (reported ${inv.seenAt.replace(/\.\d+Z$/, 'Z')}): ${h.model}; ${h.cpus}; ${h.memory}; disks ${h.disks}; ${h.firmware}` : '';
    emit(!!values.json, { ...r, inventory: inv ? { seenAt: inv.seenAt, ...h } : null }, whyText(r) + seen);
    return r.broken ? 1 : 0;
  },
);
