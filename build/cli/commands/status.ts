/**
 * status: each node, its MAC, the profile its link points at now, and its last phase and when.
 * --watch: the same live, until Ctrl-C (status-view.ts draws it).
 */
import { join } from 'node:path';
import { PXELINUX_DIR } from '../../layout.ts';
import { readProfiles } from '../../lifecycle/links.ts';
import { defaultStateFile, readState, readUnderSwitchLock } from '../../lifecycle/state.ts';
import { followStatus } from '../../lifecycle/status-feed.ts';
import { summarize, summaryLine, type StatusRow } from '../../lifecycle/status-rows.ts';
import type { Target } from '../../lifecycle/target.ts';
import type { Plan } from '../../plan/plan.ts';
import { defineCommand, emit } from '../command.ts';
import { CONFIG, JSON_OUT, ROOT, SSH, SSH_CONFIG, STATE } from '../options.ts';
import { ago, table } from '../format.ts';
import { headline, readInventories } from '../../lifecycle/inventory.ts';
import { loadPlan } from '../load-plan.ts';
import { changeLine, redrawSequence, screen } from '../status-view.ts';

export const command = defineCommand(
  {
    name: 'status',
    summary: [
      'Each node, its MAC, the profile its link points at now, and its last reported state and phase.',
      'Exits 1 with a hint when there is no served tree at --root. With --watch it stays and follows the state',
      'file and the links: a view redrawn in place with download progress bars on a terminal, one line per',
      'change in a pipe (JSON lines with --json), until Ctrl-C. The same live view in a browser: the status',
      "page at node0's http://<admin.ip>/portacluster/status/ (served by the watcher).",
    ].join('\n'),
    options: {
      config: CONFIG,
      root: ROOT,
      ssh: SSH,
      'ssh-config': SSH_CONFIG,
      state: STATE,
      json: JSON_OUT,
      watch: { type: 'boolean', description: 'stay and show every change live until Ctrl-C (redrawn on a terminal, a line per change in a pipe)' },
    },
    examples: ['portacluster status', 'portacluster status --root dist --json', 'portacluster status --watch'],
  },
  async (values) => {
    const plan = await loadPlan(values.config, values.root);
    const root = values.root ?? plan.admin.servedRoot;
    const target = { ...(values.ssh ? { host: values.ssh } : {}), ...(values['ssh-config'] ? { sshConfig: values['ssh-config'] } : {}) };
    const stateFile = values.state ?? defaultStateFile(root, plan.admin.servedRoot);
    if (values.watch) {
      await readProfiles(plan.nodes, { root, target });
      return watchStatus(plan, root, target, stateFile, !!values.json);
    }
    // Links and state from one moment: a reimage or the watcher moving a node holds the same lock.
    const read = async () => ({ profiles: await readProfiles(plan.nodes, { root, target }), doc: await readState(stateFile) });
    const { profiles, doc } = target.host ? await read() : await readUnderSwitchLock(stateFile, read);
    // The machine as it last described itself (discovery, or its installer's start): kept per MAC.
    const inventories = new Map((await readInventories(stateFile)).map((i) => [i.mac, i]));
    const nodes = plan.nodes.map((n) => {
      const s = doc.nodes[n.name];
      const inv = inventories.get(n.mac);
      return {
        name: n.name, mac: n.mac, profile: profiles.get(n.name) ?? null, state: s?.state ?? null, phase: s?.phase ?? null, since: s?.since ?? null, updated: s?.updated ?? null, detail: s?.detail ?? null, log: s?.log ?? null,
        inventory: inv ? { seenAt: inv.seenAt, ...headline(inv.inventory), disksById: inv.inventory.disks.map((d) => ({ name: d.name, byId: d.byId })) } : null,
      };
    });
    const rows = [['NODE', 'MAC', 'PROFILE', 'STATE', 'PHASE', 'UPDATED', 'DETAIL']];
    for (const n of nodes) rows.push([n.name, n.mac, n.profile ?? '(no link)', n.state ?? '-', n.phase ?? '-', n.updated ? `${n.updated.replace(/\.\d+Z$/, 'Z')} (${ago(n.updated)})` : '-', (n.detail ?? '').split('\n').pop() ?? '']);
    emit(!!values.json, { root, nodes }, table(rows));
    return 0;
  },
);

/**
 * Follows the state file itself (status-feed.ts: fs.watch + a slow poll), not the watcher's event stream:
 * it works where the page cannot — with the watcher stopped, on a tree that is not served, for any --state
 * — and it needs no HTTP client, address or port; on node0 both read the same file, so they agree.
 */
async function watchStatus(plan: Plan, root: string, target: Target, stateFile: string, json: boolean): Promise<number> {
  const out = process.stdout;
  const live = Boolean(out.isTTY) && !json;
  const title = () => `portacluster status --watch — ${root} · ${stateFile} · ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} · Ctrl-C to quit`;
  let rows: readonly StatusRow[] = [];
  let lastSummary = '';
  let first = true;
  const draw = () => {
    if (rows.length || !first) out.write(redrawSequence(screen(rows, summarize(rows), { now: Date.now(), width: out.columns || 120, height: out.rows || 40, title: title() })));
  };
  const feed = followStatus({
    nodes: plan.nodes,
    stateFile,
    readLinks: () => readProfiles(plan.nodes, { root, target }),
    ...(target.host ? {} : { linkDirs: [join(root, PXELINUX_DIR)] }),
    pollMs: target.host ? 10_000 : 2000,
    onChange: (all, changed) => {
      rows = all;
      const now = Date.now();
      if (live) draw();
      else if (json) for (const r of first ? [] : changed) out.write(JSON.stringify({ event: 'change', at: new Date(now).toISOString(), node: r }) + '\n');
      else {
        for (const r of changed) out.write(changeLine(r, now) + '\n');
        const line = summaryLine(summarize(all));
        if (line !== lastSummary) out.write(`-- ${line}\n`);
        lastSummary = line;
      }
      if (json && first) out.write(JSON.stringify({ event: 'snapshot', root, stateFile, nodes: all }) + '\n');
      first = false;
    },
    onError: (e) => {
      if (!live) process.stderr.write(`status --watch: ${e.message}\n`);
    },
  });
  // Hide the cursor while redrawing in place; whatever ends us puts it back.
  if (live) out.write('\x1b[?25l\x1b[2J');
  const clock = live ? setInterval(draw, 1000) : undefined;
  const onResize = () => draw();
  if (live) out.on('resize', onResize);
  const code = await new Promise<number>((resolve) => {
    // Ctrl-C is how a viewer is meant to end: 0. SIGTERM (someone stopped us): 143. A closed pipe (| head): 0.
    process.once('SIGINT', () => resolve(0));
    process.once('SIGTERM', () => resolve(143));
    out.once('error', () => resolve(0));
  });
  feed.close();
  clearInterval(clock);
  out.off('resize', onResize);
  if (live) out.write('\x1b[?25h\n');
  return code;
}
