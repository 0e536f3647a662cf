/**
 * Power by the spec's own commands (power: { type: "command" }, or the old nodes[].reboot as its cycle):
 * argv run on node0 through lib/run.ts, never a shell, placeholders already filled by the plan.
 */
import { PowerError } from '../lib/errors.ts';
import { commandLine, run } from '../lib/run.ts';
import type { PlanPower } from '../plan/plan.ts';
import type { CallPolicy, PowerAction, PowerDriver, PowerState } from './types.ts';

type Command = Extract<PlanPower, { type: 'command' }>;

export function commandDriver(node: { name: string }, p: Command, policy: CallPolicy): PowerDriver {
  const can = new Set<PowerAction>((['on', 'off', 'cycle', 'status'] as const).filter((k) => p[k]));
  const exec = async (action: PowerAction, okCodes = [0]) => {
    const argv = p[action];
    if (!argv) throw new PowerError(`${node.name}: the spec gives no ${action} command (power.${action})\n  hint: add power.${action}: [argv…] for this node`);
    const r = await run(argv, { nothrow: true, timeoutMs: policy.timeoutMs, input: '' });
    if (r.signal) throw new PowerError(`${node.name}: ${commandLine(argv)} did not finish within ${policy.timeoutMs / 1000} s`);
    if (!okCodes.includes(r.exitCode ?? -1))
      throw new PowerError(`${node.name}: ${commandLine(argv)} exited with code ${r.exitCode}: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join('; ')}`);
    return r;
  };
  return {
    kind: 'command',
    describe: `command ${[...can].map((a) => `${a}: ${p[a]![0]}`).join(', ')}`,
    can,
    async status(): Promise<PowerState> {
      if (!p.status) return 'unknown';
      // Prints on/off, or speaks through its exit code: 0 on, 3 off (the LSB status convention).
      const r = await exec('status', [0, 3]);
      const word = r.stdout.trim().toLowerCase();
      if (word === 'on' || word === 'off') return word;
      return r.exitCode === 3 ? 'off' : 'on';
    },
    on: async () => void (await exec('on')),
    off: async () => void (await exec('off')),
    cycle: async () => void (await exec('cycle')),
  };
}
