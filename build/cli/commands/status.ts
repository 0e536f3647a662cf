/** status: each node, its MAC, the profile its link points at now, and its last phase and when. */
import { readProfiles } from '../../lifecycle/links.ts';
import { defaultStateFile, readState } from '../../lifecycle/state.ts';
import { defineCommand, emit } from '../command.ts';
import { CONFIG, JSON_OUT, ROOT, SSH, SSH_CONFIG, STATE } from '../options.ts';
import { ago, table } from '../format.ts';
import { loadPlan } from '../load-plan.ts';

export const command = defineCommand(
  {
    name: 'status',
    summary: [
      'Each node, its MAC, the profile its link points at now, and its last reported state and phase.',
      'Exits 1 with a hint when there is no served tree at --root.',
    ].join('\n'),
    options: { config: CONFIG, root: ROOT, ssh: SSH, 'ssh-config': SSH_CONFIG, state: STATE, json: JSON_OUT },
    examples: ['portacluster status', 'portacluster status --root dist --json'],
  },
  async (values) => {
    const plan = await loadPlan(values.config, values.root);
    const root = values.root ?? plan.admin.servedRoot;
    const target = { ...(values.ssh ? { host: values.ssh } : {}), ...(values['ssh-config'] ? { sshConfig: values['ssh-config'] } : {}) };
    const profiles = await readProfiles(plan.nodes, { root, target });
    const doc = await readState(values.state ?? defaultStateFile(root, plan.admin.servedRoot));
    const nodes = plan.nodes.map((n) => {
      const s = doc.nodes[n.name];
      return { name: n.name, mac: n.mac, profile: profiles.get(n.name) ?? null, state: s?.state ?? null, phase: s?.phase ?? null, since: s?.since ?? null, updated: s?.updated ?? null, detail: s?.detail ?? null, log: s?.log ?? null };
    });
    const rows = [['NODE', 'MAC', 'PROFILE', 'STATE', 'PHASE', 'UPDATED', 'DETAIL']];
    for (const n of nodes) rows.push([n.name, n.mac, n.profile ?? '(no link)', n.state ?? '-', n.phase ?? '-', n.updated ? `${n.updated.replace(/\.\d+Z$/, 'Z')} (${ago(n.updated)})` : '-', (n.detail ?? '').split('\n').pop() ?? '']);
    emit(!!values.json, { root, nodes }, table(rows));
    return 0;
  },
);
