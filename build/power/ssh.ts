/**
 * The default when the spec names no power: `ssh NODE systemctl reboot`, which works only while the node's
 * OS runs and its sshd lets node0 in. It cannot power on, off or tell the state.
 */
import { PowerError } from '../lib/errors.ts';
import { run } from '../lib/run.ts';
import type { CallPolicy, PowerDriver } from './types.ts';

export const sshRebootArgv = (node: string): string[] => ['ssh', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', '--', node, 'systemctl', 'reboot'];

export function sshDriver(node: { name: string }, policy: CallPolicy): PowerDriver {
  const cannot = (what: string) => async () => {
    throw new PowerError(`${node.name}: ssh can only reboot a running node, not ${what}\n  hint: give the node a power spec (ipmi, redfish, pdu or command) in nodes[].power or the cluster-wide power`);
  };
  return {
    kind: 'ssh',
    describe: `ssh ${node.name} systemctl reboot`,
    can: new Set(['cycle']),
    status: async () => 'unknown',
    on: cannot('power it on'),
    off: cannot('power it off'),
    async cycle() {
      const argv = sshRebootArgv(node.name);
      const r = await run(argv, { nothrow: true, timeoutMs: Math.max(policy.timeoutMs, 30_000), input: '' });
      // 255: ssh itself failed; a reboot that drops the connection before systemctl returns is fine.
      if (r.exitCode !== 0 && !(r.exitCode === 255 && /closed by remote host|Connection to .* closed/.test(r.stderr)))
        throw new PowerError(`${node.name}: ssh reboot failed (exit ${r.exitCode}): ${r.stderr.trim().split('\n').slice(-2).join('; ')}`);
    },
  };
}
