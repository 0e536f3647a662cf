/** status: each node, its MAC, the profile its link points at now, and its last phase and when. */
import { readProfiles } from '../../lifecycle/links.ts';
import { defaultStateFile, readState } from '../../lifecycle/state.ts';
import { emit, parseFlags, type Command } from '../command.ts';
import { ago, table } from '../format.ts';
import { loadPlan } from '../load-plan.ts';

export const command: Command = async (argv) => {
  const { values } = parseFlags(argv, {
    config: { type: 'string', short: 'c' },
    root: { type: 'string' },
    ssh: { type: 'string' },
    'ssh-config': { type: 'string' },
    state: { type: 'string' },
    json: { type: 'boolean' },
  });
  const plan = await loadPlan(values.config, values.root);
  const root = values.root ?? plan.admin.servedRoot;
  const target = { ...(values.ssh ? { host: values.ssh } : {}), ...(values['ssh-config'] ? { sshConfig: values['ssh-config'] } : {}) };
  const profiles = await readProfiles(plan.nodes, { root, target });
  const doc = await readState(values.state ?? defaultStateFile());
  const nodes = plan.nodes.map((n) => {
    const s = doc.nodes[n.name];
    return { name: n.name, mac: n.mac, profile: profiles.get(n.name) ?? null, state: s?.state ?? null, phase: s?.phase ?? null, since: s?.since ?? null, updated: s?.updated ?? null, detail: s?.detail ?? null, log: s?.log ?? null };
  });
  const rows = [['NODE', 'MAC', 'PROFILE', 'STATE', 'PHASE', 'UPDATED', 'DETAIL']];
  for (const n of nodes) rows.push([n.name, n.mac, n.profile ?? '(no link)', n.state ?? '-', n.phase ?? '-', n.updated ? `${n.updated.replace(/\.\d+Z$/, 'Z')} (${ago(n.updated)})` : '-', (n.detail ?? '').split('\n').pop() ?? '']);
  emit(!!values.json, { root, nodes }, table(rows));
  return 0;
};
