/**
 * Starts the lab's Redfish emulator (redfish-service.ts, a stand-in for a real BMC) for one VM: a test CA
 * and a server certificate for the BMC's address made with the real `openssl`, then the service as its own
 * process inside the lab's netns. The driver gets the CA certificate as caFile, as an admin would give
 * portacluster the CA of their BMCs. The address must already be on an interface of the namespace.
 */
import { isIP } from 'node:net';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
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

/**
 * The lab's test CA (lab-ca.pem, made once per lab dir and kept, so a lab spec's `caFile` can name it across
 * `lab up`s and nodes) and a certificate for `address` (IP or DNS name) signed by it. EC P-256: fast to make.
 */
export async function makeTestCertificates(dir: string, name: string, address: string): Promise<{ caFile: string; cert: string; key: string }> {
  await mkdir(dir, { recursive: true });
  const [caFile, caKey] = [join(dir, 'lab-ca.pem'), join(dir, 'lab-ca.key')];
  const f = (x: string) => join(dir, `${name}.${x}`);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  if (!(await stat(caFile).catch(() => null)) || !(await stat(caKey).catch(() => null))) {
    await run(['openssl', 'req', '-x509', ...ec, '-keyout', caKey, '-out', caFile, '-days', '365', '-subj', '/CN=portacluster lab test CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  }
  await run(['openssl', 'req', ...ec, '-keyout', f('key.pem'), '-out', f('csr.pem'), '-subj', `/CN=${name}`]);
  await writeFile(f('ext.cnf'), `subjectAltName=${isIP(address) ? 'IP' : 'DNS'}:${address}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n`);
  // -set_serial from the clock: no serial file shared between nodes' certificates.
  await run(['openssl', 'x509', '-req', '-in', f('csr.pem'), '-CA', caFile, '-CAkey', caKey, '-set_serial', String(Date.now()), '-out', f('cert.pem'), '-days', '30', '-extfile', f('ext.cnf')]);
  return { caFile, cert: f('cert.pem'), key: f('key.pem') };
}

export async function startRedfishBmc(o: RedfishBmcOptions): Promise<{ pid: number; url: string; caFile: string; log: string }> {
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
  return { pid, url, caFile: certs.caFile, log };
}
