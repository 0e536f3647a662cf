/**
 * lab up|down|status: a virtual cluster on this machine (build/lab/lab.ts). `lab up` after
 * `npm run build:image`, then `portacluster reimage --all --reboot --root dist` powers the VMs on into the
 * installer and `portacluster status --root dist` (or the serial logs it names) shows them go.
 */
import { resolve } from 'node:path';
import { UsageError } from '../../lib/errors.ts';
import { defaultStateFile } from '../../lifecycle/state.ts';
import { labDirFor, labDown, labStatus, labUp } from '../../lab/lab.ts';
import { defineCommand, emit } from '../command.ts';
import { table } from '../format.ts';
import { loadPlan } from '../load-plan.ts';
import { CONFIG, JSON_OUT, STATE } from '../options.ts';

/** The argv that runs this very CLI again (node, its loader flags such as --import tsx, the main script). */
function selfArgv(): string[] {
  return [process.execPath, ...process.execArgv, process.argv[1]!];
}

export const command = defineCommand(
  {
    name: 'lab',
    positionals: 'up|down|status',
    summary: [
      'A virtual cluster on this machine from a built tree: a network namespace with a bridge holding node0\'s',
      "address, node0's services by `portacluster serve`, and a QEMU VM per node (TCG, no KVM needed), powered",
      'off until `reimage --reboot` powers them on. Needs root. `lab down` stops everything by recorded PID.',
    ].join('\n'),
    options: {
      config: CONFIG,
      root: { type: 'string', arg: 'DIR', description: 'the built tree the lab serves (default dist)' },
      dir: { type: 'string', arg: 'DIR', description: 'the VMs\' disks, serial logs and serve\'s output (default .cache/portacluster/lab/<cluster>)' },
      state: STATE,
      nodes: { type: 'string', arg: 'N', description: 'only the first N nodes of the spec (default all)' },
      memory: { type: 'string', arg: 'MIB', description: 'memory per VM (default 1024; the installer environment runs from RAM)' },
      wipe: { type: 'boolean', description: 'with down: remove the VMs\' disks too' },
      json: JSON_OUT,
    },
    examples: ['portacluster lab up --nodes 2', 'portacluster reimage --all --reboot --root dist', 'portacluster lab status', 'portacluster lab down --wipe'],
  },
  async (values, positionals) => {
  const [sub] = positionals;
  const root = resolve(values.root ?? 'dist');
  const plan = await loadPlan(values.config, root);
  const say = (line: string) => {
    if (!values.json) process.stdout.write(line + '\n');
  };
  switch (sub) {
    case 'up': {
      const nodes = values.nodes === undefined ? undefined : Number(values.nodes);
      if (nodes !== undefined && !(Number.isInteger(nodes) && nodes >= 1 && nodes <= plan.nodes.length))
        throw new UsageError(`--nodes wants a number from 1 to ${plan.nodes.length} (the spec's nodes), got ${JSON.stringify(values.nodes)}`);
      const memoryMiB = Number(values.memory ?? 1024);
      if (!(Number.isInteger(memoryMiB) && memoryMiB >= 512)) throw new UsageError(`--memory wants MiB ≥ 512 (the installer environment runs from RAM), got ${JSON.stringify(values.memory)}`);
      const lab = await labUp({ plan, root, dir: resolve(values.dir ?? labDirFor(plan.cluster)), stateFile: values.state ?? defaultStateFile(root, plan.admin.servedRoot), ...(nodes ? { nodes } : {}), memoryMiB, self: selfArgv(), log: say });
      emit(!!values.json, lab, `lab ${plan.cluster} is up: ${lab.vms.length} node${lab.vms.length === 1 ? '' : 's'}, powered off.\nnext: portacluster reimage --all --reboot --root ${root}    then: portacluster status --root ${root}`);
      return 0;
    }
    case 'down': {
      const lab = await labDown(plan.cluster, { wipe: !!values.wipe, log: say });
      emit(!!values.json, { ok: true, cluster: lab.cluster, netns: lab.netns, wiped: !!values.wipe }, `lab ${plan.cluster} is down${values.wipe ? '' : `; disks kept in ${lab.dir} (--wipe removes them)`}`);
      return 0;
    }
    case 'status': {
      const s = await labStatus(plan.cluster);
      const rows = [['NODE', 'MAC', 'FIRMWARE', 'POWER', 'QEMU PID', 'BMC', 'SERIAL LOG'], ...s.vms.map((v) => [v.name, v.mac, v.firmware, v.power, String(v.pid), v.bmc ? `${v.bmc.kind} ${v.bmc.address}` : '-', v.serialLog])];
      const head = s.serve ? `lab ${plan.cluster}: namespace ${s.netns} ${s.up ? 'up' : 'MISSING'}; node0 services (serve pid ${s.serve.pid}) ${s.serve.running ? 'running' : 'NOT running'}, log ${s.serve.log}` : `no lab is up for cluster ${plan.cluster}`;
      emit(!!values.json, s, s.serve ? `${head}\n${table(rows)}` : head);
      return s.serve ? 0 : 1;
    }
    default:
      throw new UsageError(`lab wants up, down or status (got ${JSON.stringify(sub ?? '')})`);
  }
  },
);
