/**
 * IPMI through ipmitool: `ipmitool -I lanplus -H host -p port -U user -E [-C n] -- power status|on|off|cycle`
 * and `chassis bootdev pxe` (no `options=persistent`: the next boot only). The password reaches ipmitool in
 * its environment (IPMI_PASSWORD with -E), never in argv, where `ps` would show it to every user.
 */
import { PowerError } from '../lib/errors.ts';
import { run } from '../lib/run.ts';
import type { PlanPower } from '../plan/plan.ts';
import { readSecret } from './secrets.ts';
import type { CallPolicy, PowerDriver, PowerState } from './types.ts';

type Ipmi = Extract<PlanPower, { type: 'ipmi' }>;

/** The BMC answered and said no (a wrong password, a command it lacks): never retried. */
class BmcRefused extends PowerError {
  override name = 'BmcRefused';
}

/**
 * Lines ipmitool's -v adds on every call, and "Unable to Get Channel Cipher Suites" (a BMC without that
 * command, such as OpenIPMI's ipmi_sim: ipmitool then falls back to suite 3). Only these exact lines are
 * dropped, so a real error always reaches the message.
 */
const NOISE = [/^Loading IANA PEN Registry\.\.\.$/, /^Running Get VSO Capabilities /, /^Discovered IPMB address /, /^Unable to Get Channel Cipher Suites$/];

export function ipmitoolWords(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const kept: string[] = [];
  lines.forEach((l, i) => {
    if (NOISE.some((re) => re.test(l))) return;
    // The answer to the VSO probe above (a BMC that is not a PICMG/VSO one): part of the same noise.
    if (l === 'Invalid completion code received: Invalid command' && /^Running Get VSO Capabilities /.test(lines[i - 1] ?? '')) return;
    kept.push(l.replace(/^> /, ''));
  });
  return kept.join('; ');
}

/** ipmitool's words for "nothing answered at that address" (as opposed to a refused login or command). */
const NO_ANSWER = /Get Auth Capabilities error|Error issuing Get Channel Authentication Capabilities|No response from remote controller|Insufficient resources for session/;

/** The argv before the command, without the password. Exported for tests and the lab. */
export function ipmitoolArgv(p: Ipmi, policy: CallPolicy): string[] {
  // -N: seconds between retransmissions, -R: retransmissions; together about one policy timeout per call.
  const perTry = Math.max(1, Math.floor(policy.timeoutMs / 2000));
  return [
    'ipmitool', '-v', '-I', p.interface, '-H', p.host, '-p', String(p.port), '-U', p.user, '-E',
    ...(p.cipherSuite !== undefined ? ['-C', String(p.cipherSuite)] : []),
    '-N', String(perTry), '-R', '1',
  ];
}

export function ipmiDriver(node: { name: string }, p: Ipmi, policy: CallPolicy): PowerDriver {
  const bmc = `BMC ${p.host}:${p.port}`;
  const describe = `ipmi ${p.host}:${p.port} (${p.interface}${p.cipherSuite !== undefined ? `, cipher suite ${p.cipherSuite}` : ''})`;
  /** One ipmitool command, retried while the BMC does not answer; refusals (a wrong password, a command the BMC lacks) are not retried. */
  const call = async (command: string[]): Promise<{ stdout: string; stderr: string }> => {
    const password = await readSecret(p.password, `${node.name}'s BMC password`);
    const argv = [...ipmitoolArgv(p, policy), '--', ...command];
    let last = '';
    for (let attempt = 0; attempt <= policy.retries; attempt++) {
      // The hard limit is a backstop above ipmitool's own retransmission timeout.
      const r = await run(argv, { nothrow: true, timeoutMs: policy.timeoutMs + 5000, env: { ...process.env, IPMI_PASSWORD: password }, input: '' });
      if (r.exitCode === 0 && !r.signal) return r;
      const words = ipmitoolWords(r.stderr) || (r.signal ? `killed after ${(policy.timeoutMs + 5000) / 1000} s` : `exit ${r.exitCode}`);
      if (!(NO_ANSWER.test(r.stderr) || r.signal)) throw new BmcRefused(`${node.name}: ${bmc} refused "${command.join(' ')}": ${words}`);
      last = words;
    }
    throw new PowerError(
      `${node.name}: ${bmc} did not answer (${policy.retries + 1} tr${policy.retries ? 'ies' : 'y'}, ~${policy.timeoutMs / 1000} s each): ${last}\n` +
        `  hint: is the BMC at ${p.host} port ${p.port} reachable from here (ping, or ipmitool ... power status), and is IPMI over LAN enabled on it?`,
    );
  };
  const status = async (): Promise<PowerState> => {
    const out = (await call(['power', 'status'])).stdout;
    if (/Chassis Power is on/i.test(out)) return 'on';
    if (/Chassis Power is off/i.test(out)) return 'off';
    throw new PowerError(`${node.name}: ${bmc} answered "power status" with ${JSON.stringify(out.trim())}`);
  };
  return {
    kind: 'ipmi',
    describe,
    can: new Set(['on', 'off', 'cycle', 'status']),
    status,
    on: async () => void (await call(['power', 'on'])),
    off: async () => void (await call(['power', 'off'])),
    // Many BMCs refuse "power cycle" on a node that is off: power it on instead.
    async cycle() {
      if ((await status()) === 'off') await call(['power', 'on']);
      else await call(['power', 'cycle']);
    },
    async bootOnceFromNetwork() {
      try {
        // ipmitool exits 0 even when the BMC refused the boot parameters ("Set Chassis Boot Parameter 5
        // failed: …"): only its confirmation line says the flag was set.
        const r = await call(['chassis', 'bootdev', 'pxe']);
        if (/Set Boot Device to pxe/.test(r.stdout)) return null;
        return `${node.name}: ${bmc} refused "chassis bootdev pxe": ${ipmitoolWords(r.stderr) || r.stdout.trim()}`;
      } catch (e) {
        if (e instanceof BmcRefused) return e.message.replace(/^power: /, '');
        throw e;
      }
    },
  };
}
