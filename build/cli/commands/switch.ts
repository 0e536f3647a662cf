/**
 * reimage | rescue | diskless | normal <node…|--all>: point nodes' per-node links at a profile, in the local served
 * tree (--root, default the spec's servedRoot) or on node0 (--ssh HOST, --root then names the path
 * there); optionally reboot them.
 * reimage, rescue and diskless mark the nodes `requested` in the state file so `watch` expects their reports;
 * normal marks them done.
 */
import { markSwitched, defaultStateFile, withSwitchLock } from '../../lifecycle/state.ts';
import { resolveNodes, serverLinks, switchNodes, type SwitchResult } from '../../lifecycle/links.ts';
import { runArgv, type Target } from '../../lifecycle/target.ts';
import type { Plan, PlanNode } from '../../plan/plan.ts';
import { UsageError } from '../../lib/errors.ts';
import { defineCommand, emit, type Command, type CommandSpec } from '../command.ts';
import { CONFIG, JSON_OUT, ROOT, SSH, SSH_CONFIG, STATE } from '../options.ts';
import { loadPlan } from '../load-plan.ts';
import { commandLine } from '../../lib/run.ts';
import { driverFor } from '../../power/registry.ts';
import { sshRebootArgv } from '../../power/ssh.ts';
import { labPower, labVmFor, runInherited } from '../lab-power.ts';
import { endOpenRun, openRuns, openRunsRemote, type RunAction } from '../../lifecycle/runs.ts';

type Action = 'reimage' | 'rescue' | 'diskless' | 'normal';

interface RebootRow {
  node: string;
  driver: string | null;
  describe: string | null;
  /** "set", or the BMC's refusal in its words; null when the driver has no boot override (ssh, command, a lab VM). */
  bootOnce: string | null;
  how: 'cycle' | 'on' | null;
  ok: boolean;
  error?: string;
}

/**
 * Each node through its power driver: the next boot from the network where the BMC can (best effort: a
 * refusal is reported, the per-MAC link still decides what a network-first node boots), then a cycle, or
 * power on when it is off.
 * With --ssh the spec's commands run on node0; a BMC is reached from node0 by `portacluster power` there.
 */
async function rebootNodes(plan: Plan, nodes: PlanNode[], target: Target, remote: boolean): Promise<RebootRow[]> {
  const lab = remote ? null : (await labPower(plan.cluster, nodes)).lab;
  const rows: RebootRow[] = [];
  for (const node of nodes) {
    const row: RebootRow = { node: node.name, driver: null, describe: null, bootOnce: null, how: null, ok: false };
    rows.push(row);
    try {
      if (remote) {
        const p = node.power;
        const argv = p.type === 'command' && p.cycle ? p.cycle : p.type === 'ssh' ? sshRebootArgv(node.name) : null;
        if (!argv) throw new Error(`${node.name}'s ${p.type} power is driven from node0: run portacluster power cycle ${node.name} there (the BMC secrets live on node0)`);
        Object.assign(row, { driver: p.type, describe: commandLine(argv), how: 'cycle' });
        const r = await runArgv(target, argv, { nothrow: true, timeoutMs: 60_000 });
        if (r.exitCode !== 0) throw new Error(`exit ${r.exitCode}: ${r.stderr.trim().split('\n').pop() ?? ''}`);
        row.ok = true;
        continue;
      }
      const vm = labVmFor(lab, node);
      // The lab's nodes are VMs or nothing: an ssh reboot would only time out.
      if (vm === null) throw new Error(`no VM for ${node.name} in the lab (lab up started ${lab!.vms.map((v) => v.name).join(', ')}; --nodes N starts the first N)`);
      const d = driverFor(node, { lab: vm });
      Object.assign(row, { driver: d.kind, describe: d.describe });
      row.bootOnce = d.bootOnceFromNetwork ? ((await d.bootOnceFromNetwork()) ?? 'set') : null;
      const off = d.can.has('status') && (await d.status()) === 'off';
      row.how = off ? 'on' : 'cycle';
      await (off ? d.on() : d.cycle());
      row.ok = true;
    } catch (e) {
      row.error = (e as Error).message.replace(/^power: /, '');
    }
  }
  return rows;
}

function profileFor(action: Action, plan: Plan): string {
  if (action === 'diskless') {
    if (!plan.profiles.diskless) throw new UsageError('the spec builds no diskless profile; nothing was switched\n  hint: set boot.diskless: true (and installerEnv.type: "builtin"), then build and deploy');
    return plan.profiles.diskless;
  }
  return action === 'reimage' ? plan.profiles.installer : action === 'rescue' ? plan.profiles.rescue : plan.profiles.os;
}

const switchSpec = (action: Action) => ({
  name: action,
  positionals: '<node…|--all>',
  summary: [
    "Point nodes' boot links at a profile: reimage → the installer, rescue → the rescue environment,",
    'diskless → the golden image from RAM, normal → the installed OS. reimage, rescue and diskless mark the',
    'nodes requested in the state file (watch then expects their reports); normal marks them done.',
    'Nodes are host names or MACs in any spelling.',
  ].join('\n'),
  options: {
    config: CONFIG,
    all: { type: 'boolean', description: 'every node of the spec' },
    root: ROOT,
    ssh: SSH,
    'ssh-config': SSH_CONFIG,
    state: STATE,
    reboot: { type: 'boolean', description: "then reboot the nodes through their power (boot once from the network where the BMC can, then cycle, or on when off)" },
    json: JSON_OUT,
  },
  examples: [`portacluster ${action} node3${action === 'normal' ? '' : ' --reboot'}`, `portacluster ${action} --all --ssh node0`],
}) satisfies CommandSpec;

function makeCommand(action: Action): Command {
  return defineCommand(switchSpec(action), async (values, positionals) => {
    const plan = await loadPlan(values.config, values.ssh ? undefined : values.root);
    const nodes = resolveNodes(plan.nodes, positionals, !!values.all);
    const profile = profileFor(action, plan);
    // A lab's BMC stand-ins listen inside its namespace: the whole command runs again in there, before it switches anything.
    if (values.reboot && !values.ssh) {
      const { reexec } = await labPower(plan.cluster, nodes);
      if (reexec) return runInherited(reexec);
    }
    const target: Target = { ...(values.ssh ? { host: values.ssh } : {}), ...(values['ssh-config'] ? { sshConfig: values['ssh-config'] } : {}) };
    const root = values.root ?? plan.admin.servedRoot;
    // A run per node (reimage/rescue/diskless), opened before the switch so the node never boots into an
    // installer without its run file: the nonce goes to that file in the tree and to the run record beside
    // the state file; the watcher counts only that run's reports (lifecycle/runs.ts).
    // The state file lives where the watcher runs; with --ssh that is node0 (--state names it there), where
    // the run's files are written over ssh and the watcher takes the run up with the node's first report.
    const stateFile = values.state ?? defaultStateFile(root, plan.admin.servedRoot);
    const at = new Date();
    const opening = { stateFile, root, nodes, action: action as RunAction, profile, at };
    const move = async () => {
      const runs = action === 'normal' ? undefined : values.ssh ? await openRunsRemote({ ...opening, target: { ...target, host: values.ssh } }) : await openRuns(opening);
      const started = performance.now();
      const switched = await switchNodes(nodes, profile, { root, target, servers: serverLinks(plan, values['ssh-config']) });
      const ms = performance.now() - started;
      if (!values.ssh) await markSwitched(stateFile, nodes, action, profile, at, { ...(runs ? { runs, deadline: new Date(at.getTime() + plan.phoneHome.deadlines.requested * 60_000) } : {}) });
      // normal ends a run by hand: from now on its installer's reports count for nothing (its start is refused).
      if (!values.ssh && action === 'normal') for (const n of nodes) await endOpenRun(stateFile, n.name, at);
      return { runs, switched, ms };
    };
    // The run, the links and the state move together: a concurrent reimage/normal or a report the watcher
    // is counting waits (state.ts withSwitchLock). With --ssh the state lives on node0, out of reach here.
    const { runs, switched, ms } = values.ssh ? await move() : await withSwitchLock(stateFile, move);

    const reboots = values.reboot ? await rebootNodes(plan, nodes, target, !!values.ssh) : [];
    const line = (s: SwitchResult) => `${s.node.padEnd(12)} ${s.mac}  ${s.from ?? '(none)'} -> ${s.to}`;
    const text = [
      ...switched.map((s) => line(s) + (runs?.get(s.node) ? `  run ${runs.get(s.node)}` : '')),
      `${switched.length} node${switched.length === 1 ? '' : 's'} switched to ${profile} in ${values.ssh ? values.ssh + ':' : ''}${root} (${ms.toFixed(1)} ms)`,
      ...reboots.flatMap((r) => [
        ...(r.bootOnce && r.bootOnce !== 'set' ? [`reboot ${r.node}: boot once from the network: ${r.bootOnce} (best effort: its link still decides what it boots)`] : []),
        `reboot ${r.node}: ${r.ok ? `ok (${r.how} via ${r.describe})` : 'FAILED ' + r.error}`,
      ]),
    ].join('\n');
    emit(!!values.json, { action, profile, root, host: values.ssh ?? null, switched, runs: runs ? Object.fromEntries(runs) : {}, reboots, ms }, text);
    return reboots.every((r) => r.ok) ? 0 : 1;
  });
}

export const reimage = makeCommand('reimage');
export const rescue = makeCommand('rescue');
export const diskless = makeCommand('diskless');
export const normal = makeCommand('normal');

