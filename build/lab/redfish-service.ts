/**
 * The lab's Redfish emulator — a stand-in for a server's BMC, the way sushy-tools emulates one for libvirt
 * VMs: no Redfish BMC or emulator package is reachable here, so this serves the DMTF schema paths and
 * payloads a power driver uses (ServiceRoot, the Systems collection, one ComputerSystem with PowerState,
 * Boot.BootSourceOverride* and Actions/ComputerSystem.Reset, SessionService/Sessions) over HTTPS, with Basic
 * and X-Auth-Token authentication, and powers one QEMU VM through its monitor socket.
 *
 * Run as its own process (started by startRedfishBmc in redfish-bmc.ts, inside the lab's netns):
 *   node --import tsx build/lab/redfish-service.ts --listen ADDR:PORT --cert PEM --key PEM --user U
 *        --password-file F --system-id ID --vm-name N --monitor SOCK --vm-pid PID
 * It logs one line per request (never a header or a password) to stdout.
 */
import { randomBytes, createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import { parseArgs } from 'node:util';
import { monitorCommand, vmOff, vmPower, vmReset } from '../power/qemu-monitor.ts';

const { values: a } = parseArgs({
  options: {
    listen: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' }, user: { type: 'string' },
    'password-file': { type: 'string' }, 'system-id': { type: 'string' }, 'vm-name': { type: 'string' },
    monitor: { type: 'string' }, 'vm-pid': { type: 'string' },
  },
  strict: true,
});
for (const k of ['listen', 'cert', 'key', 'user', 'password-file', 'system-id', 'vm-name', 'monitor', 'vm-pid'] as const) {
  if (!a[k]) throw new Error(`redfish-service: --${k} is required`);
}
const [host, port] = [a.listen!.replace(/:\d+$/, ''), Number(a.listen!.replace(/^.*:/, ''))];
const vm = { monitor: a.monitor!, pid: Number(a['vm-pid']) };
const password = readFileSync(a['password-file']!, 'utf8').split(/\r?\n/, 1)[0]!;
const id = a['system-id']!;
const SYS = `/redfish/v1/Systems/${id}`;
const RESET_TYPES = ['On', 'ForceOff', 'GracefulShutdown', 'ForceRestart', 'PowerCycle'];
const BOOT_TARGETS = ['None', 'Pxe', 'Hdd', 'Cd', 'BiosSetup'];
const BOOT_ENABLED = ['Disabled', 'Once', 'Continuous'];
const boot = { BootSourceOverrideEnabled: 'Disabled', BootSourceOverrideTarget: 'None' };
const sessions = new Map<string, string>(); // token → session id
let sessionSeq = 0;

/** A Redfish error body (Base message registry), the words a driver shows the user. */
function error(res: ServerResponse, status: number, messageId: string, message: string, extra: Record<string, string> = {}): void {
  send(res, status, {
    error: {
      code: `Base.1.8.${messageId}`,
      message,
      '@Message.ExtendedInfo': [{ '@odata.type': '#Message.v1_1_1.Message', MessageId: `Base.1.8.${messageId}`, Message: message, Severity: 'Critical', Resolution: 'See the message.' }],
    },
  }, extra);
}

function send(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'odata-version': '4.0', ...extra });
  res.end(text);
}

const same = (x: string, y: string) => x.length === y.length && timingSafeEqual(Buffer.from(x), Buffer.from(y));

function authorized(req: IncomingMessage): boolean {
  const token = req.headers['x-auth-token'];
  if (typeof token === 'string') return sessions.has(token);
  const m = /^Basic ([A-Za-z0-9+/=]+)$/.exec(req.headers.authorization ?? '');
  if (!m) return false;
  const [u, ...rest] = Buffer.from(m[1]!, 'base64').toString().split(':');
  return same(u ?? '', a.user!) && same(rest.join(':'), password);
}

async function system(): Promise<{ body: object; etag: string }> {
  const power = await vmPower(vm);
  const body = {
    '@odata.type': '#ComputerSystem.v1_13_0.ComputerSystem',
    '@odata.id': SYS,
    Id: id,
    Name: a['vm-name'],
    SystemType: 'Physical',
    Manufacturer: 'portacluster lab (QEMU)',
    PowerState: power === 'running' ? 'On' : 'Off',
    Status: { State: power === 'gone' ? 'Absent' : 'Enabled', Health: 'OK' },
    Boot: {
      ...boot,
      'BootSourceOverrideEnabled@Redfish.AllowableValues': BOOT_ENABLED,
      'BootSourceOverrideTarget@Redfish.AllowableValues': BOOT_TARGETS,
    },
    Actions: { '#ComputerSystem.Reset': { target: `${SYS}/Actions/ComputerSystem.Reset`, 'ResetType@Redfish.AllowableValues': RESET_TYPES } },
  };
  const etag = `W/"${createHash('sha256').update(JSON.stringify(body)).digest('hex').slice(0, 16)}"`;
  return { body, etag };
}

/** A boot of the VM consumes a "Once" override, as a BMC does. (The lab's VMs boot the network first anyway.) */
function booted(): void {
  if (boot.BootSourceOverrideEnabled === 'Once') Object.assign(boot, { BootSourceOverrideEnabled: 'Disabled', BootSourceOverrideTarget: 'None' });
}

async function reset(type: string): Promise<void> {
  const power = await vmPower(vm);
  if (power === 'gone') throw new Error(`the VM's qemu (pid ${vm.pid}) is gone`);
  if (type === 'On') {
    if (power !== 'running') (await vmReset(vm), booted());
  } else if (type === 'ForceOff') await vmOff(vm);
  else if (type === 'GracefulShutdown') await monitorCommand(vm.monitor, 'system_powerdown'); // ACPI: the guest OS decides
  else if (type === 'ForceRestart') (await vmReset(vm), booted());
  else if (type === 'PowerCycle') {
    await vmOff(vm);
    await new Promise((r) => setTimeout(r, 1000));
    await vmReset(vm);
    booted();
  }
}

async function readJson(req: IncomingMessage): Promise<any> {
  let text = '';
  for await (const chunk of req) {
    text += chunk;
    if (text.length > 65536) throw new SyntaxError('body too large');
  }
  return text ? JSON.parse(text) : {};
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0]!.replace(/(.)\/+$/, '$1');
  const m = req.method ?? 'GET';
  // The service root and the login are open without credentials (DSP0266); everything else is not.
  if (m === 'GET' && path === '/redfish') return send(res, 200, { v1: '/redfish/v1/' });
  if (m === 'GET' && path === '/redfish/v1') {
    return send(res, 200, {
      '@odata.type': '#ServiceRoot.v1_5_0.ServiceRoot', '@odata.id': '/redfish/v1', Id: 'RootService', Name: 'portacluster lab Redfish emulator',
      RedfishVersion: '1.11.0', Systems: { '@odata.id': '/redfish/v1/Systems' }, SessionService: { '@odata.id': '/redfish/v1/SessionService' },
      Links: { Sessions: { '@odata.id': '/redfish/v1/SessionService/Sessions' } },
    });
  }
  if (m === 'POST' && path === '/redfish/v1/SessionService/Sessions') {
    const body = await readJson(req);
    if (!same(String(body.UserName ?? ''), a.user!) || !same(String(body.Password ?? ''), password)) return error(res, 401, 'NoValidSession', 'Invalid user name or password.');
    const token = randomBytes(24).toString('hex');
    const sid = String(++sessionSeq);
    sessions.set(token, sid);
    const uri = `/redfish/v1/SessionService/Sessions/${sid}`;
    return send(res, 201, { '@odata.type': '#Session.v1_3_0.Session', '@odata.id': uri, Id: sid, Name: 'User Session', UserName: a.user }, { 'x-auth-token': token, location: uri });
  }
  if (!authorized(req)) return error(res, 401, 'NoValidSession', 'There is no valid session established with the implementation.', { 'www-authenticate': 'Basic realm="Redfish"' });

  if (m === 'GET' && path === '/redfish/v1/SessionService') {
    return send(res, 200, { '@odata.type': '#SessionService.v1_1_8.SessionService', '@odata.id': path, Id: 'SessionService', ServiceEnabled: true, SessionTimeout: 1800, Sessions: { '@odata.id': `${path}/Sessions` } });
  }
  if (m === 'GET' && path === '/redfish/v1/SessionService/Sessions') {
    const members = [...sessions.values()].map((s) => ({ '@odata.id': `${path}/${s}` }));
    return send(res, 200, { '@odata.type': '#SessionCollection.SessionCollection', '@odata.id': path, Name: 'Sessions', Members: members, 'Members@odata.count': members.length });
  }
  const del = /^\/redfish\/v1\/SessionService\/Sessions\/(\d+)$/.exec(path);
  if (m === 'DELETE' && del) {
    const token = [...sessions].find(([, s]) => s === del[1])?.[0];
    if (!token) return error(res, 404, 'ResourceMissingAtURI', `The resource at the URI ${path} was not found.`);
    sessions.delete(token);
    res.writeHead(204).end();
    return;
  }
  if (m === 'GET' && path === '/redfish/v1/Systems') {
    return send(res, 200, { '@odata.type': '#ComputerSystemCollection.ComputerSystemCollection', '@odata.id': path, Name: 'Computer System Collection', Members: [{ '@odata.id': SYS }], 'Members@odata.count': 1 });
  }
  if (path === SYS && m === 'GET') {
    const s = await system();
    return send(res, 200, s.body, { etag: s.etag });
  }
  if (path === SYS && m === 'PATCH') {
    const ifMatch = req.headers['if-match'];
    if (ifMatch && ifMatch !== (await system()).etag) return error(res, 412, 'PreconditionFailed', 'The ETag supplied did not match the ETag required to change this resource.');
    const body = await readJson(req);
    const b = body.Boot ?? {};
    const other = Object.keys(body).filter((k) => k !== 'Boot').concat(Object.keys(b).filter((k) => !(k in boot)));
    if (other.length) return error(res, 400, 'PropertyNotWritable', `The property ${other[0]} is a read only property and cannot be assigned a value.`);
    if (b.BootSourceOverrideEnabled !== undefined && !BOOT_ENABLED.includes(b.BootSourceOverrideEnabled)) return error(res, 400, 'PropertyValueNotInList', `The value ${JSON.stringify(b.BootSourceOverrideEnabled)} for the property BootSourceOverrideEnabled is not in the list of acceptable values.`);
    if (b.BootSourceOverrideTarget !== undefined && !BOOT_TARGETS.includes(b.BootSourceOverrideTarget)) return error(res, 400, 'PropertyValueNotInList', `The value ${JSON.stringify(b.BootSourceOverrideTarget)} for the property BootSourceOverrideTarget is not in the list of acceptable values.`);
    Object.assign(boot, b);
    console.log(`boot override: ${boot.BootSourceOverrideEnabled} ${boot.BootSourceOverrideTarget}`);
    const s = await system();
    return send(res, 200, s.body, { etag: s.etag });
  }
  if (path === `${SYS}/Actions/ComputerSystem.Reset` && m === 'POST') {
    const type = (await readJson(req)).ResetType;
    if (!RESET_TYPES.includes(type)) return error(res, 400, 'ActionParameterValueNotInList', `The value ${JSON.stringify(type)} for the parameter ResetType in the action ComputerSystem.Reset is not in the list of acceptable values.`);
    await reset(type);
    console.log(`reset: ${type} → ${await vmPower(vm)}`);
    res.writeHead(204).end();
    return;
  }
  if ([SYS, '/redfish/v1/Systems', `${SYS}/Actions/ComputerSystem.Reset`].includes(path)) return error(res, 405, 'OperationNotAllowed', `The ${m} method is not allowed on ${path}.`, { allow: path === SYS ? 'GET, PATCH' : path.endsWith('Reset') ? 'POST' : 'GET' });
  return error(res, 404, 'ResourceMissingAtURI', `The resource at the URI ${path} was not found.`);
}

const server = createServer({ cert: readFileSync(a.cert!), key: readFileSync(a.key!) }, (req, res) => {
  const started = Date.now();
  res.on('finish', () => console.log(`${req.method} ${req.url} → ${res.statusCode} (${Date.now() - started} ms)`));
  handle(req, res).catch((e: Error) => {
    if (res.headersSent) return res.destroy();
    if (e instanceof SyntaxError) return error(res, 400, 'MalformedJSON', `The request body submitted was malformed JSON: ${e.message}`);
    error(res, 500, 'InternalError', `The request failed due to an internal service error: ${e.message}`);
  });
});
server.listen(port, host, () => console.log(`redfish emulator for ${a['vm-name']} listening on https://${a.listen} (system ${id}, monitor ${vm.monitor})`));
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
