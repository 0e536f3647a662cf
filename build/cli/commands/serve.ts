/**
 * serve: run node0's services (dnsmasq, nginx, the watcher) from a built tree in the foreground, as one
 * supervised group. Output is prefixed per service; --json prints one event per line.
 * SIGHUP re-renders and re-checks the configs from the (now live) tree and applies them only if the real
 * tools accept them (nginx reloads, dnsmasq and the watcher restart); the group keeps running either way.
 * Exit: 0 after Ctrl-C/SIGTERM, 1 when a service ended by itself or failed to start, 2 on bad usage.
 */
import { resolve } from 'node:path';
import { UsageError } from '../../lib/errors.ts';
import { defaultStateFile } from '../../lifecycle/state.ts';
import { DEFAULT_LOG_DIR, DEFAULT_RUN_DIR, serve, type ServeEvent } from '../../lifecycle/serve.ts';
import { defineCommand } from '../command.ts';
import { eventLine } from '../format.ts';
import { loadPlan } from '../load-plan.ts';
import { watchPower } from '../node-power.ts';
import { CONFIG, JSON_OUT, ROOT, SSH_CONFIG, STATE } from '../options.ts';

function textLine(e: ServeEvent): string {
  switch (e.event) {
    case 'line':
      return `${e.service.padEnd(7)} | ${e.line}`;
    case 'up':
      return `up: ${e.service}${e.pid ? ` (pid ${e.pid})` : ''} — ${e.detail}`;
    case 'exit': {
      const how = e.signal ? `was killed by ${e.signal}` : `exited with code ${e.code}`;
      return `${e.service} ${how}${e.tail.length ? `; its last output:\n${e.tail.map((l) => `    ${l}`).join('\n')}` : ''}`;
    }
    case 'stopping':
      return `stopping every service (${e.reason})`;
    case 'stopped':
      return e.code === 0 ? 'stopped; no service left running' : 'stopped: a service ended, so the group stopped (see above); no service left running';
    case 'report':
      return `watcher | ${eventLine(e.report)}`;
    case 'reload':
      return `${e.ok ? 'reload' : 'reload FAILED'}: ${e.message}`;
  }
}

export const command = defineCommand(
  {
    name: 'serve',
    summary: [
      "Run node0's services from a built tree in the foreground, as one supervised group: the watcher, dnsmasq",
      "(DHCP + TFTP) and nginx (HTTP), their configs rendered from the tree's own spec and checked by the real",
      'tools first. A service that ends stops the group (exit 1); Ctrl-C or SIGTERM stops every service (exit 0);',
      'SIGHUP reloads from the live tree (deploy --activate sends it).',
    ].join('\n'),
    options: {
      config: CONFIG,
      root: ROOT,
      state: STATE,
      'run-dir': { type: 'string', arg: 'DIR', description: `runtime configs and pid files (default ${DEFAULT_RUN_DIR})` },
      'log-dir': { type: 'string', arg: 'DIR', description: `nginx's access log (default ${DEFAULT_LOG_DIR})` },
      interface: { type: 'string', arg: 'IF', description: "bind dnsmasq here instead of the spec's admin.interface" },
      'no-upstream-dns': { type: 'boolean', description: 'no upstream DNS and no /etc/hosts for dnsmasq (an isolated network such as the lab)' },
      'log-dhcp': { type: 'boolean', description: "dnsmasq logs every DHCP exchange in full (client arch, vendor class, the boot answer): for a node that gets no boot answer" },
      timeout: { type: 'string', arg: 'SECONDS', description: 'one deadline for every phase: a node still in a phase this long missed it (default phoneHome.deadlines, else timeoutMinutes)' },
      'ssh-config': { ...SSH_CONFIG, description: "ssh config file (ssh -F) for the watcher to reach the boot servers, where their nodes' links are switched" },
      json: { ...JSON_OUT, description: 'one JSON event per line (up, line, exit, report, reload, stopping, stopped)' },
    },
    examples: ['portacluster serve --root /srv/public', 'portacluster serve --root dist --interface br0 --run-dir /tmp/pc-run --log-dir /tmp/pc-log --json'],
  },
  async (values) => {
    const plan = await loadPlan(values.config, values.root);
    const timeoutS = values.timeout === undefined ? undefined : Number(values.timeout);
    if (timeoutS !== undefined && !(timeoutS > 0)) throw new UsageError(`--timeout wants seconds > 0 (got ${values.timeout})`);
    if (values.interface !== undefined && !/^[A-Za-z0-9_.:-]{1,15}$/.test(values.interface)) throw new UsageError(`--interface: not an interface name (got ${JSON.stringify(values.interface)})`);
    const print = (e: ServeEvent) => process.stdout.write((values.json ? JSON.stringify(e) : textLine(e)) + '\n');
    // Installed before anything starts: a SIGHUP that arrives while the group comes up waits for it,
    // instead of killing serve (SIGHUP's default action).
    let reload: (() => void) | null = null;
    let pendingHup = false;
    process.on('SIGHUP', () => (reload ? reload() : (pendingHup = true)));
    // Likewise Ctrl-C/SIGTERM: one that arrives while the group is still coming up stops it once it is up.
    let stop: ((signal: string) => void) | null = null;
    let pendingStop: string | null = null;
    const onSignal = (signal: string) => (stop ? stop(signal) : (pendingStop ??= signal));
    process.once('SIGINT', () => onSignal('SIGINT'));
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    const root = resolve(values.root ?? plan.admin.servedRoot);
    const group = await serve({
      plan,
      root,
      stateFile: values.state ?? defaultStateFile(root, plan.admin.servedRoot),
      runDir: resolve(values['run-dir'] ?? DEFAULT_RUN_DIR),
      logDir: resolve(values['log-dir'] ?? DEFAULT_LOG_DIR),
      ...(values.interface ? { interface: values.interface } : {}),
      noUpstreamDns: !!values['no-upstream-dns'],
      logDhcp: !!values['log-dhcp'],
      ...(timeoutS !== undefined ? { timeoutMs: timeoutS * 1000 } : {}),
      // The watcher's retries and parking (node-power.ts: the lab's VMs, else the legacy reboot command).
      power: watchPower(plan),
      ...(values['ssh-config'] ? { sshConfig: resolve(values['ssh-config']) } : {}),
      // SIGHUP (deploy --activate) reads the spec again from the tree that is live by then.
      reloadPlan: () => loadPlan(values.config, values.root),
      onEvent: print,
    }).catch((e: Error & { service?: string }) => {
      // startGroup already reported the service's exit and stopped the others.
      if (e.service) return null;
      throw e;
    });
    if (!group) return 1;
    stop = (signal) => void group.stop(`${signal} received`);
    if (pendingStop) stop(pendingStop);
    reload = () => void group.reload();
    if (pendingHup) reload();
    return group.done;
  },
);
