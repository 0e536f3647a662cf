/**
 * A node's power through a switched PDU's outlet(s) over SNMP, with net-snmp's `snmpget`/`snmpset`.
 *
 * No secret is ever on a command line (any user can read argv in ps): the community, or the v3 user and
 * passphrases, go into a temporary snmp.conf (mode 0600, in a 0700 directory, removed after the call) that
 * the tools read through SNMPCONFPATH as their defaults (defCommunity, defSecurityName, defAuthPassphrase…).
 * SNMPCONFPATH replaces the tools' whole search path, so ~/.snmp and /etc/snmp cannot add or change
 * anything, and SNMP_PERSISTENT_DIR keeps their engine-boots file out of /var/lib/snmp.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandError, PowerError } from '../lib/errors.ts';
import { run } from '../lib/run.ts';
import type { PlanPower } from '../plan/plan.ts';
import { readSecret } from './secrets.ts';
import type { CallPolicy, PowerDriver, PowerState } from './types.ts';

type PduPower = Extract<PlanPower, { type: 'pdu' }>;

/** A value for snmp.conf: the tools split a line into words, honouring "…" with \ escapes (copy_nword). */
export function snmpConfValue(v: string): string {
  if (/[\r\n\0]/.test(v)) throw new Error('a line break or NUL cannot be written into snmp.conf');
  return `"${v.replace(/[\\"]/g, '\\$&')}"`;
}

/** The tools' defaults for this PDU, secrets included: the lines of the temporary snmp.conf. */
async function confLines(p: PduPower, what: (m: string) => Error): Promise<string[]> {
  const secret = async (ref: NonNullable<PduPower['community']>) => readSecret(ref, 'the SNMP secret').catch((e: Error) => { throw what(e.message); });
  if (p.version === '2c') {
    if (!p.community) throw what('SNMP v2c needs a community (communityFile or communityEnv)');
    return ['defVersion 2c', `defCommunity ${snmpConfValue(await secret(p.community))}`];
  }
  if (!p.user) throw what('SNMP v3 needs a user (the security name)');
  const lines = ['defVersion 3', `defSecurityName ${snmpConfValue(p.user)}`];
  if (!p.auth) return [...lines, 'defSecurityLevel noAuthNoPriv'];
  lines.push(`defAuthType ${p.authProtocol ?? 'SHA'}`, `defAuthPassphrase ${snmpConfValue(await secret(p.auth))}`);
  if (!p.privProtocol) return [...lines, 'defSecurityLevel authNoPriv'];
  if (!p.priv) throw what(`SNMP v3 privacy (${p.privProtocol}) needs its passphrase (privPasswordFile or privPasswordEnv)`);
  return [...lines, 'defSecurityLevel authPriv', `defPrivType ${p.privProtocol}`, `defPrivPassphrase ${snmpConfValue(await secret(p.priv))}`];
}

export function pduDriver(node: { name: string }, p: PduPower, policy: CallPolicy): PowerDriver {
  const agent = `udp:${p.host}:${p.port}`;
  const where = `PDU ${p.host}:${p.port} outlet${p.outlets.length > 1 ? 's' : ''} ${p.outlets.join(',')}`;
  const fail = (m: string) => new PowerError(`${node.name}: ${m}`);
  const oids = p.outlets.map((o) => `${p.scheme.oid.replace(/^\.?/, '.')}.${o}`);
  // net-snmp's -t is seconds; it retries by itself (-r), so one run covers the whole policy.
  const seconds = String(Math.max(1, Math.ceil(policy.timeoutMs / 1000)));

  /** One snmpget/snmpset with the secrets in a throw-away snmp.conf; stdout, or a PowerError in the tool's words. */
  async function snmp(tool: 'snmpget' | 'snmpset', args: string[]): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'pc-snmp-'));
    try {
      await writeFile(join(dir, 'snmp.conf'), (await confLines(p, fail)).join('\n') + '\n', { mode: 0o600 });
      // -On numeric OIDs and -Oqv bare values: no MIB is needed to read the answer. -m '' loads no MIB files.
      const argv = [tool, '-m', '', '-On', '-t', seconds, '-r', String(policy.retries), ...(tool === 'snmpget' ? ['-Oqv'] : ['-Oq']), agent, ...args];
      const env: NodeJS.ProcessEnv = { ...process.env, SNMPCONFPATH: dir, SNMP_PERSISTENT_DIR: dir };
      // A secret given by environment variable is in the conf file now: the tools' environment need not hold it.
      for (const ref of [p.community, p.auth, p.priv]) if (ref && 'env' in ref) delete env[ref.env];
      const guard = (policy.timeoutMs * (policy.retries + 1)) + 10_000;
      const r = await run(argv, { env, nothrow: true, timeoutMs: guard });
      if (r.exitCode === 0 && !/^Error in packet|No Such (Object|Instance)/m.test(r.stdout + r.stderr)) return r.stdout;
      // The tools announce the private persistent dir they create ("Created directory: …"): not an error.
      const words = (r.stderr + r.stdout).trim().split('\n').filter((l) => l.trim() && !l.startsWith('Created directory:')).slice(0, 4).join('; ');
      if (/Timeout: No Response/.test(words)) {
        throw fail(`${where}: no answer from the SNMP agent ${agent} within ${seconds} s × ${policy.retries + 1} tries (${words})` +
          `\n  hint: check host/port, that the PDU is reachable from node0, and the ${p.version === '2c' ? 'community' : 'v3 user'} (a wrong community is not answered at all)`);
      }
      const hint = /notWritable|noAccess|authorizationError|noSuchName/.test(words)
        ? `\n  hint: the ${p.version === '2c' ? 'community' : 'v3 user'} may be read-only, or the OID ${p.scheme.oid} is not this PDU's outlet control`
        : /Authentication failure|Unknown user|Decryption error|unsupported security level/i.test(words) ? '\n  hint: check the v3 user, protocols and passphrases the spec names' : '';
      throw fail(`${where}: ${tool} ${agent} failed (${r.signal ? `killed by ${r.signal}` : `exit ${r.exitCode}`}): ${words}${hint}`);
    } catch (e) {
      if (e instanceof PowerError) throw e;
      if (e instanceof CommandError || (e as NodeJS.ErrnoException).code === 'ENOENT') throw fail(`${where}: ${tool} could not run: ${(e as Error).message}\n  hint: install net-snmp's tools (Debian: snmp)`);
      throw fail(`${where}: ${(e as Error).message}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  const set = (value: number) => snmp('snmpset', oids.flatMap((oid) => [oid, 'i', String(value)])).then(() => undefined);

  async function status(): Promise<PowerState> {
    const values = (await snmp('snmpget', oids)).trim().split('\n').map((l) => Number(l.trim()));
    if (values.length !== oids.length || values.some((v) => Number.isNaN(v))) return 'unknown';
    // The node has power only when every outlet feeding it is on.
    if (values.every((v) => v === p.scheme.on)) return 'on';
    return values.every((v) => v === p.scheme.on || v === p.scheme.off) ? 'off' : 'unknown';
  }

  return {
    kind: 'pdu',
    describe: `pdu ${p.host}:${p.port} outlet${p.outlets.length > 1 ? 's' : ''} ${p.outlets.join(',')}`,
    can: new Set(['on', 'off', 'cycle', 'status']),
    status,
    on: () => set(p.scheme.on),
    off: () => set(p.scheme.off),
    async cycle() {
      if ((await status()) === 'off') return set(p.scheme.on);
      if (p.scheme.cycle !== undefined) return set(p.scheme.cycle);
      await set(p.scheme.off);
      await new Promise((r) => setTimeout(r, p.offSeconds * 1000));
      await set(p.scheme.on);
    },
  };
}
