/**
 * watch: receive the installers' reports, keep the state file, switch finished nodes to their OS.
 * Output: a live table on a terminal, one line per event otherwise, JSON lines with --json.
 */
import { UsageError } from '../../lib/errors.ts';
import { readProfiles, serverLinks } from '../../lifecycle/links.ts';
import { defaultStateFile, readState } from '../../lifecycle/state.ts';
import { startWatcher } from '../../lifecycle/watch.ts';
import { defineCommand } from '../command.ts';
import { CONFIG, ROOT, SSH_CONFIG, STATE } from '../options.ts';
import { ago, eventLine, table } from '../format.ts';
import { loadPlan } from '../load-plan.ts';
import { watchPower } from '../node-power.ts';

export function parseListen(value: string | undefined, defaultPort: number): { host: string; port: number } | null {
  if (value === 'off' || value === 'none') return null;
  const m = /^(?:(\[[0-9a-f:]+\]|[^:]+):)?(\d{1,5})$/i.exec(value ?? String(defaultPort));
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new UsageError(`--listen wants [ADDR:]PORT or off (got ${JSON.stringify(value)})`);
  return { host: (m[1] ?? '127.0.0.1').replace(/^\[|\]$/g, ''), port };
}

export const command = defineCommand(
  {
    name: 'watch',
    summary: [
      "Receive the installers' phone-home reports (HTTP, behind nginx's proxy of phoneHome.path, and/or nginx's",
      'access log), keep the state file, and switch each node that reports done to its OS. A live table on a',
      'terminal, one line per event otherwise, JSON lines with --json. Runs until Ctrl-C, or with --until-done',
      'until every requested node is done, failed or timed out (at once when none is requested). A report counts only',
      "for the node's requested run, with its nonce, from its fixed IP; a node past its phase's deadline is",
      'power-cycled into the installer again (phoneHome.retries), then parked (phoneHome.park) and marked failed.',
    ].join('\n'),
    options: {
      config: CONFIG,
      root: ROOT,
      state: STATE,
      listen: { type: 'string', arg: 'ADDR:PORT', description: 'where to receive reports; off: read only --access-log (default: 127.0.0.1:<phoneHome.watcherPort>)' },
      'access-log': { type: 'string', arg: 'FILE', description: "also follow nginx's access log for reports (e.g. /var/log/nginx/access.log)" },
      'from-start': { type: 'boolean', description: 'read --access-log from its beginning, not only new lines' },
      'until-done': { type: 'boolean', description: 'exit when every requested node has finished: 0 all done, 1 some failed or timed out' },
      timeout: { type: 'string', arg: 'SECONDS', description: 'one deadline for every phase: a node still in a phase this long missed it (default: phoneHome.deadlines, else timeoutMinutes)' },
      'ssh-config': { ...SSH_CONFIG, description: "ssh config file (ssh -F) for reaching the boot servers, where their nodes' links are switched" },
      json: { type: 'boolean', description: 'one JSON document per event on stdout' },
    },
    examples: ['portacluster watch --until-done', 'portacluster watch --listen off --access-log /var/log/nginx/access.log --from-start'],
  },
  async (values) => {
    const plan = await loadPlan(values.config, values.root);
    const timeoutS = values.timeout === undefined ? undefined : Number(values.timeout);
    if (timeoutS !== undefined && !(timeoutS > 0)) throw new UsageError(`--timeout wants seconds > 0 (got ${values.timeout})`);
    const listen = parseListen(values.listen, plan.phoneHome.watcherPort);
    if (!listen && !values['access-log']) throw new UsageError('with --listen off, give --access-log FILE');
    const root = values.root ?? plan.admin.servedRoot;
    const stateFile = values.state ?? defaultStateFile(root, plan.admin.servedRoot);
    if (values['until-done']) {
      const pending = Object.values((await readState(stateFile)).nodes).filter((n) => n.state === 'requested' || n.state === 'installing');
      if (!pending.length) {
        // Waiting would never end: nothing reports unless a node was switched to an installing profile.
        const msg = `nothing to wait for: no node is requested or installing in ${stateFile}\n  hint: \`portacluster reimage NODE\` first, then watch --until-done`;
        process.stdout.write(values.json ? JSON.stringify({ event: 'nothing-requested', stateFile }) + '\n' : msg + '\n');
        return 0;
      }
    }
    const out = process.stdout;
    const live = Boolean(out.isTTY) && !values.json && process.env.GITHUB_ACTIONS !== 'true';
    const recent: string[] = [];

    async function redraw(): Promise<void> {
      const doc = await readState(stateFile);
      const profiles = await readProfiles(plan.nodes, { root }).catch(() => new Map<string, string | null>());
      const rows = [['NODE', 'MAC', 'PROFILE', 'STATE', 'PHASE', 'SINCE', 'UPDATED']];
      for (const n of plan.nodes) {
        const s = doc.nodes[n.name];
        rows.push([n.name, n.mac, profiles.get(n.name) ?? '(no link)', s?.state ?? '-', s?.phase ?? '-', ago(s?.since), ago(s?.updated)]);
      }
      out.write('\x1b[H\x1b[2J' + `portacluster watch — ${listen ? `http://${listen.host}:${listen.port}${plan.phoneHome.path}/` : ''}${values['access-log'] ? ` access log ${values['access-log']}` : ''}\n\n` + table(rows) + '\n\n' + recent.join('\n') + '\n');
    }

    const watcher = await startWatcher({
      plan,
      root,
      stateFile,
      listen,
      ...(values['access-log'] ? { accessLog: values['access-log'] } : {}),
      accessLogFromStart: !!values['from-start'],
      ...(timeoutS !== undefined ? { timeoutMs: timeoutS * 1000 } : {}),
      // Retries and parking power the nodes (node-power.ts: the lab's VMs, else the legacy reboot command).
      power: watchPower(plan),
      // Nodes behind boot servers boot their links there: the watcher switches them over ssh.
      servers: serverLinks(plan, values['ssh-config']),
      onEvent: (e) => {
        if (values.json) out.write(JSON.stringify(e) + '\n');
        // A progress report every few seconds per node: the JSON stream and the table show it, a log would drown.
        else if (e.state === 'progress') return;
        else if (!live) out.write(eventLine(e) + '\n');
        else {
          recent.push(eventLine(e));
          if (recent.length > 8) recent.shift();
          void redraw();
        }
      },
    });
    const where = [watcher.address ? `http://${watcher.address.address}:${watcher.address.port}${plan.phoneHome.path}/` : null, values['access-log'] ? `access log ${values['access-log']}` : null].filter(Boolean).join(' and ');
    if (values.json) out.write(JSON.stringify({ event: 'listening', http: watcher.address ? `${watcher.address.address}:${watcher.address.port}` : null, accessLog: values['access-log'] ?? null, watched: [...watcher.watched] }) + '\n');
    else if (live) await redraw();
    else out.write(`watching ${where}; ${watcher.watched.size ? `expecting ${[...watcher.watched].join(', ')}` : 'no node requested yet'}\n`);
    let ticker: NodeJS.Timeout | undefined;
    if (live) ticker = setInterval(() => void redraw(), 5000);

    const stop = new Promise<number>((resolve) => {
      const onSignal = () => resolve(130);
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', () => resolve(143));
    });
    const code = values['until-done'] ? await Promise.race([watcher.finished.then((ok) => (ok ? 0 : 1)), stop]) : await stop;
    clearInterval(ticker);
    await watcher.close();
    if (values['until-done'] && code <= 1 && !values.json) out.write(code === 0 ? 'every watched node is done\n' : 'some nodes failed or timed out\n');
    return code;
  },
);
