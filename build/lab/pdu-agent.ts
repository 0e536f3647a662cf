/**
 * The lab's PDU stand-in: a real net-snmp `snmpd` whose APC PowerNet-MIB outlet control (sPDUOutletCtl)
 * is served by pdu-outlets.ts through `pass_persist`, so portacluster's PDU driver talks real SNMP (v2c
 * community, or a v3 user with auth/priv) to it and the VMs behind the outlets go off and on.
 *
 * Everything lives in the lab's dir: its own snmpd.conf (-C -c: the system's /etc/snmp is not read), its
 * own persistent dir (SNMP_PERSISTENT_DIR: the v3 user's keys and engine boots, never /var/lib/snmp) and
 * its log (-Lf). snmpd runs in the foreground (-f) so the PID returned is snmpd's own.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { APC_OUTLET_CTL } from '../plan/plan.ts';
import type { SecretRef } from '../plan/plan.ts';
import { snmpConfValue } from '../power/pdu.ts';
import { readSecret } from '../power/secrets.ts';
import { shq } from '../render/shell.ts';
import { spawnDaemon, waitReady } from './daemon.ts';
import type { PduOutletsConfig } from './pdu-outlets.ts';

export interface PduV3User {
  user: string;
  authProtocol: 'SHA' | 'MD5';
  auth: SecretRef;
  privProtocol?: 'AES' | 'DES';
  priv?: SecretRef;
}

export interface PduAgentOptions {
  ns: string | null;
  address: string;
  port: number;
  /** v2c: the read-write community. */
  community?: SecretRef;
  /** v2c: a read-only community (a set with it is refused: noAccess). */
  readOnlyCommunity?: SecretRef;
  /** v3: user(s) allowed to write the outlets, with authentication (and privacy when privProtocol is given). */
  v3?: PduV3User | PduV3User[];
  dir: string;
  outlets: Record<number, { name: string; monitor: string; pid: number }>;
  /** An outlet reboot (value 3): seconds between off and on (APC's sPDUOutletRebootDuration; default 3). */
  rebootSeconds?: number;
}

export async function startPduAgent(o: PduAgentOptions): Promise<{ pid: number; log: string }> {
  const dir = join(o.dir, `pdu-${o.address}-${o.port}`);
  const persistent = join(dir, 'persistent');
  await mkdir(persistent, { recursive: true, mode: 0o700 });
  const oid = APC_OUTLET_CTL.oid;

  const handlerConfig: PduOutletsConfig = { base: oid, log: join(dir, 'pdu-outlets.log'), rebootSeconds: o.rebootSeconds ?? 3, outlets: Object.fromEntries(Object.entries(o.outlets)) };
  await writeFile(join(dir, 'pdu-outlets.json'), JSON.stringify(handlerConfig, null, 2) + '\n');
  // pass_persist runs PROG split into words (no shell, no quoting we could rely on): one wrapper script.
  const handler = join(dir, 'pdu-outlets.sh');
  const script = fileURLToPath(new URL('./pdu-outlets.ts', import.meta.url));
  await writeFile(handler, `#!/bin/sh\nexec ${[process.execPath, '--import', import.meta.resolve('tsx'), script, join(dir, 'pdu-outlets.json')].map(shq).join(' ')}\n`, { mode: 0o700 });

  const conf: string[] = [];
  if (o.community) conf.push(`rwcommunity ${snmpConfValue(await readSecret(o.community, 'the lab PDU secret'))} default ${oid}`);
  if (o.readOnlyCommunity) conf.push(`rocommunity ${snmpConfValue(await readSecret(o.readOnlyCommunity, 'the lab PDU secret'))} default ${oid}`);
  for (const v of o.v3 === undefined ? [] : Array.isArray(o.v3) ? o.v3 : [o.v3]) {
    const priv = v.privProtocol && v.priv ? ` ${v.privProtocol} ${snmpConfValue(await readSecret(v.priv, 'the lab PDU secret'))}` : '';
    conf.push(`createUser ${snmpConfValue(v.user)} ${v.authProtocol} ${snmpConfValue(await readSecret(v.auth, 'the lab PDU secret'))}${priv}`);
    conf.push(`rwuser ${snmpConfValue(v.user)} ${priv ? 'priv' : 'auth'} ${oid}`);
  }
  conf.push(`pass_persist ${oid} ${handler}`);
  const confFile = join(dir, 'snmpd.conf');
  // It holds the community and passphrases.
  await writeFile(confFile, conf.join('\n') + '\n', { mode: 0o600 });

  const log = join(dir, 'snmpd.log');
  const size = (await readFile(log, 'utf8').catch(() => '')).length;
  // -f foreground, -C no other config file, -c ours, -Lf log, -m '' no MIB files (it serves numeric OIDs).
  const argv = ['snmpd', '-f', '-C', '-c', confFile, '-Lf', log, '-m', '', `udp:${o.address}:${o.port}`];
  const pid = await spawnDaemon(o.ns, argv, log, { ...process.env, SNMP_PERSISTENT_DIR: persistent });
  await waitReady(`the lab's PDU agent (snmpd on udp:${o.address}:${o.port})`, pid, log, async () => (await readFile(log, 'utf8')).slice(size).includes('NET-SNMP version'));
  return { pid, log };
}
