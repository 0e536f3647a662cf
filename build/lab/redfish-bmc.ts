/**
 * Starts the lab's Redfish emulator (redfish-service.ts, a stand-in for a real BMC) for one VM: a test CA
 * and a server certificate for the BMC's address made with the real `openssl`, then the service as its own
 * process inside the lab's netns. The driver gets the CA certificate as caFile, as an admin would give
 * portacluster the CA of their BMCs.
 */
import { isIP } from 'node:net';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../lib/run.ts';
import { spawnDaemon, waitReady } from './daemon.ts';

export interface RedfishBmcOptions {
  ns: string | null;
  name: string;
  address: string;
  port: number;
  user: string;
  passwordFile: string;
  dir: string;
  vm: { name: string; monitor: string; pid: number };
  /** The ComputerSystem id (default "1", as many BMCs number it). */
  systemId?: string;
}

/** A CA and a certificate for `address` (IP or DNS name) signed by it; returns the files. EC P-256: fast to make. */
export async function makeTestCertificates(dir: string, name: string, address: string): Promise<{ caFile: string; cert: string; key: string }> {
  await mkdir(dir, { recursive: true });
  const f = (x: string) => join(dir, `${name}.${x}`);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run(['openssl', 'req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '30', '-subj', `/CN=portacluster lab CA for ${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await run(['openssl', 'req', ...ec, '-keyout', f('key.pem'), '-out', f('csr.pem'), '-subj', `/CN=${name}-bmc`]);
  await writeFile(f('ext.cnf'), `subjectAltName=${isIP(address) ? 'IP' : 'DNS'}:${address}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n`);
  await run(['openssl', 'x509', '-req', '-in', f('csr.pem'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('cert.pem'), '-days', '30', '-extfile', f('ext.cnf')]);
  return { caFile: f('ca.pem'), cert: f('cert.pem'), key: f('key.pem') };
}

export async function startRedfishBmc(o: RedfishBmcOptions): Promise<{ pid: number; url: string; caFile: string }> {
  const certs = await makeTestCertificates(o.dir, `${o.name}-redfish`, o.address);
  const log = join(o.dir, `${o.name}.redfish.log`);
  const service = fileURLToPath(new URL('./redfish-service.ts', import.meta.url));
  // tsx by its resolved path: the service runs from any working directory.
  const tsx = import.meta.resolve('tsx');
  const argv = [process.execPath, '--import', tsx, service, '--listen', `${o.address}:${o.port}`, '--cert', certs.cert, '--key', certs.key,
    '--user', o.user, '--password-file', o.passwordFile, '--system-id', o.systemId ?? '1', '--vm-name', o.vm.name, '--monitor', o.vm.monitor, '--vm-pid', String(o.vm.pid)];
  const size = (await readFile(log, 'utf8').catch(() => '')).length;
  const pid = await spawnDaemon(o.ns, argv, log);
  const host = isIP(o.address) === 6 ? `[${o.address}]` : o.address;
  const url = `https://${host}:${o.port}`;
  await waitReady(`the Redfish emulator for ${o.name} (${url})`, pid, log, async () => (await readFile(log, 'utf8')).slice(size).includes(' listening on '));
  return { pid, url, caFile: certs.caFile };
}
