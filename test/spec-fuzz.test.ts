/**
 * The spec is untrusted input. This walks the JSON Schema for every string-typed field (inside arrays and
 * every anyOf branch, so a new field is fuzzed without touching this file), puts each hostile value into
 * it on a valid base spec, and asserts: validateSpec refuses it at that field's path, or, where the value
 * is legitimately valid there, everything generated from the plan is inert — dnsmasq.conf and nginx.conf
 * have exactly the base's directives and pass the real tools, the boot trees have the base's shape, the
 * scripts' data prologues evaluate in bash to exactly the values (nothing runs), pacman.conf keeps its
 * sections, no argv gains an option, no file name leaves its directory.
 */
import { access, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { SpecError } from '../build/lib/errors.ts';
import { insideDir } from '../build/lib/inside-dir.ts';
import { run } from '../build/lib/run.ts';
import { ClusterSpecSchema } from '../build/spec/schema.ts';
import { pathOf, validateSpec } from '../build/spec/validate.ts';
import { planCluster, type Plan } from '../build/plan/plan.ts';
import { renderDnsmasqConf } from '../build/render/dnsmasq.ts';
import { renderNginxConf } from '../build/render/nginx.ts';
import { renderBootServerDnsmasqConf } from '../build/render/dnsmasq-bootserver.ts';
import { bootServerSite, renderBootServerNginxConf } from '../build/render/nginx-bootserver.ts';
import { osProfile, renderPxelinuxTree, type PxeProfile } from '../build/render/pxelinux.ts';
import { renderIpxeTree } from '../build/render/ipxe.ts';
import { disklessProfile } from '../build/render/diskless.ts';
import { installerBootEntry } from '../build/render/installer-append.ts';
import { renderSysrescuecfg } from '../build/render/sysrescuecfg.ts';
import { disklessVars, installerVars, rescueVars } from '../build/render/autorun.ts';
import { dataPrologue, type ShellValue } from '../build/render/shell.ts';
import { mmdebstrapArgv } from '../build/image/debian.ts';
import { pacmanConf, pacstrapArgv, archPackages } from '../build/image/arch.ts';
import { installerRootArgv } from '../build/installer-env/bootstrap.ts';
import { imageFileName } from '../build/stages/pack-image.ts';
import { squashfsFileName } from '../build/stages/pack-squashfs.ts';
import { fsImageFileName } from '../build/stages/pack-fsimage.ts';
import type { InstallerEnvArtifact } from '../build/plan/artifacts.ts';
import { adaptNginxConf } from './helpers/nginx.ts';
import { workspace } from './helpers/workspace.ts';
import { baseSpec } from './fixtures/specs.ts';

type Key = string | number;
type Schema = { type?: string; anyOf?: Schema[]; properties?: Record<string, Schema>; items?: Schema };

/** Every string-typed field of the schema, by display path (`nodes[0].mac`); array items at index 0. */
function stringFields(schema: Schema, path: Key[] = [], out = new Map<string, Key[]>()): Map<string, Key[]> {
  if (schema.anyOf) for (const branch of schema.anyOf) stringFields(branch, path, out);
  else if (schema.type === 'object') for (const [k, s] of Object.entries(schema.properties ?? {})) stringFields(s, [...path, k], out);
  else if (schema.type === 'array' && schema.items) stringFields(schema.items, [...path, 0], out);
  else if (schema.type === 'string') out.set(pathOf(path.join('/')), path);
  return out;
}

const MARK = join(tmpdir(), `pc-fuzz-pwned-${process.pid}`);
const HOSTILE: [string, string][] = [
  ['newline', `x\ndhcp-script=${MARK}\n#`],
  ['CR', 'x\rinclude /etc/passwd;'],
  ['NUL', 'x\0y'],
  ['long option', '--opt=x'],
  ['short option', '-x'],
  ['dot-dot slash', '../'],
  ['climbing path', '../../etc/x'],
  ['absolute path', '/abs'],
  ['single quote', "'"],
  ['double quote', '"'],
  ['command substitution', `$(touch ${MARK})`],
  ['backticks', `\`touch ${MARK}\``],
  ['semicolon', ';'],
  ['hash', '#'],
  ['open brace', '{'],
  ['close brace', '}'],
  ['percent', '%'],
  ['5000 characters', 'a'.repeat(5000)],
];

// Bases that between them hold every optional field and every anyOf branch: arch + builtin environment
// (+ diskless, pxelinux, by-id), debian + SystemRescue by URL (iPXE, by-path), SystemRescue by path.
function bases(): Record<string, any>[] {
  const a = baseSpec();
  a.$schema = './schema/portacluster.schema.json';
  a.admin = { ...a.admin, httpBase: 'http://192.168.10.10', servedRoot: '/srv/public' };
  a.appliances[0].ip = '192.168.10.5';
  a.nodes[0] = { ...a.nodes[0], profile: 'installer', loader: 'pxelinux', reboot: ['ipmitool', '-H', '{ip}', 'chassis', 'power', 'cycle'] };
  a.boot = { ...a.boot, loader: 'pxelinux', diskless: true, os: { ...a.boot.os, kernelArgs: ['quiet'], serialConsole: 'ttyS0,115200' } };
  a.image = { ...a.image, repos: ['core', 'extra'], rootfs: '/srv/rootfs' };
  a.disk.target = { byId: 'ata-QEMU_HARDDISK_QM00001' };
  a.nodes[0].diskTarget = { byId: 'virtio-node1-disk' };
  a.disk.partitions[0] = { ...a.disk.partitions[0], filesystem: 'vfat', label: 'ESP' };
  a.disk.partitions[1] = { ...a.disk.partitions[1], label: 'root' };
  a.users[0].shell = '/bin/bash';
  a.phoneHome = { path: '/portacluster/report', afterInstall: 'reboot' };
  a.installerEnv = { type: 'builtin', mirror: 'http://deb.debian.org/debian', suite: 'bookworm' };
  a.bootServers = [{ name: 'rack1-boot', backboneIp: '192.168.10.21', interface: 'eno2', ip: '10.100.1.1', prefix: 24, rangeStart: '10.100.1.100', rangeEnd: '10.100.1.200', leaseTime: '1h', nodes: ['node2'], ssh: 'root@192.168.10.21' }];
  const b = structuredClone(a);
  delete b.nodes[0].reboot;
  b.boot = { ...b.boot, loader: 'ipxe', diskless: false, os: { ...b.boot.os, name: 'debian' } };
  b.image = { name: 'debian', distro: 'debian', release: 'bookworm', mirror: 'http://deb.debian.org/debian', components: ['main'], packages: ['vim'] };
  b.disk.target = { byPath: 'pci-0000:00:1f.2-ata-1' };
  b.nodes[0].diskTarget = { byPath: 'pci-0000:00:05.0' };
  b.installerEnv = { type: 'systemrescue', url: 'https://example.org/systemrescue.iso', sha256: 'a'.repeat(64), keymap: 'us' };
  const c = structuredClone(b);
  c.installerEnv = { type: 'systemrescue', path: '/var/lib/iso/systemrescue.iso', sha512: 'b'.repeat(128) };
  // Power: every driver's fields, on a node and as the cluster-wide default (each base stays valid).
  const ipmi = { type: 'ipmi', host: '{name}-ipmi', port: 623, user: 'ADMIN', passwordFile: '/etc/portacluster/ipmi.pw', interface: 'lanplus', cipherSuite: 17 };
  const redfish = { type: 'redfish', url: 'https://{name}-bmc:8443', systemId: 'System.Embedded.1', user: 'root', passwordEnv: 'BMC_PASSWORD', insecure: false, caFile: '/etc/portacluster/bmc-ca.pem' };
  const v3 = { type: 'pdu', host: '192.168.10.5', version: '3', user: 'pdu', authProtocol: 'SHA', privProtocol: 'AES', outlets: [3] };
  const generic = { oid: '.1.3.6.1.4.1.9999.1.2', on: 1, off: 0, cycle: 2 };
  const pduV3File = { ...v3, passwordFile: '/etc/portacluster/pdu-auth', privPasswordFile: '/etc/portacluster/pdu-priv', scheme: generic };
  const pduV3Env = { ...v3, passwordEnv: 'PDU_AUTH', privPasswordEnv: 'PDU_PRIV', scheme: 'apc' };
  const pduV2File = { type: 'pdu', host: '{name}-pdu', version: '2c', communityFile: '/etc/portacluster/pdu-community', outlets: [1, 2], scheme: 'apc' };
  const pduV2Env = { type: 'pdu', host: '192.168.10.5', communityEnv: 'PDU_COMMUNITY', outlets: [4], scheme: generic, offSeconds: 3 };
  const command = { type: 'command', on: ['ipmitool', '-H', '{ip}', 'power', 'on'], off: ['pdu-off', '{mac}'], cycle: ['pdu-cycle', '{name}'], status: ['pdu-status', '{name}'] };
  const withPower = (base: any, node: object, cluster: object) => {
    const x = structuredClone(base);
    // reboot is the old spelling of a command's cycle: beside a power it is refused (base a keeps it, alone).
    delete x.nodes[0].reboot;
    x.nodes[0].power = node;
    x.power = cluster;
    return x;
  };
  // node2 has no ip: a cluster-wide command it inherits may not use {ip}.
  const commandNoIp = { ...command, on: ['pdu-on', '{name}', '{mac}'] };
  return [
    a,
    withPower(a, ipmi, redfish),
    withPower(b, redfish, ipmi),
    withPower(c, pduV3File, pduV2File),
    withPower(c, pduV3Env, { ...pduV3File, passwordEnv: undefined }),
    withPower(c, pduV2File, pduV3Env),
    withPower(c, pduV2Env, pduV2Env),
    withPower(c, command, commandNoIp),
    withPower(c, { type: 'ssh' }, { type: 'ssh' }),
  ].map((x) => JSON.parse(JSON.stringify(x)));
}

const has = (v: any, path: Key[]) => path.reduce<any>((x, k) => (x === undefined || x === null ? undefined : x[k]), v) !== undefined;

function setAt(v: any, path: Key[], value: string): void {
  let x = v;
  path.slice(0, -1).forEach((k, i) => {
    if (x[k] === undefined) x[k] = typeof path[i + 1] === 'number' ? [] : {};
    x = x[k];
  });
  x[path[path.length - 1]!] = value;
}

const ENV: Record<string, InstallerEnvArtifact> = {
  builtin: { kind: 'builtin', version: '6.1.0-28-amd64', kernel: 'installer-kernel', initrds: ['installer-initramfs'], files: [] },
  systemrescue: { kind: 'sysrcd-modern', version: '11.02', kernel: 'sysrcd-kernel', initrds: ['sysrcd-intel-ucode.img', 'sysrcd-initramfs'], files: [] },
};
const SHA = '0123456789abcdef'.repeat(4);
const IMAGE = { fileName: 'x', sha256: SHA, size: 1 };

/** Everything the build generates from a plan without the network or root, as data to compare. */
async function renderAll(plan: Plan) {
  const env = ENV[plan.installerEnv.type]!;
  const entry = (profile: 'installer' | 'rescue'): PxeProfile => ({
    label: profile,
    ...installerBootEntry(env, {
      httpBase: plan.admin.httpBase,
      keymap: plan.installerEnv.type === 'systemrescue' ? plan.installerEnv.keymap : null,
      profile,
      ...(profile === 'rescue' && env.kind === 'sysrcd-modern' ? { sysrescuecfgUrl: `${plan.admin.httpBase}/rescue/sysrescue.yaml` } : {}),
      ...(plan.os.serialConsole ? { serialConsole: plan.os.serialConsole } : {}),
    }),
  });
  const profiles = { installer: entry('installer'), rescue: entry('rescue'), [plan.os.name]: osProfile(plan), ...(plan.diskless ? { diskless: disklessProfile(plan, env) } : {}) };
  const image = { ...IMAGE, fileName: imageFileName(plan.image.name, SHA) };
  return {
    dnsmasq: renderDnsmasqConf(plan),
    nginx: renderNginxConf(plan),
    servers: plan.bootServers.map((b) => [renderBootServerDnsmasqConf(plan, b), renderBootServerNginxConf(plan, bootServerSite(plan, b))] as const),
    pxelinux: renderPxelinuxTree(plan, profiles),
    ipxe: renderIpxeTree(plan, profiles),
    sysrescue: plan.installerEnv.type === 'systemrescue' ? renderSysrescuecfg({ authorizedKeys: plan.rescue.sshKeys, nofirewall: true }) : undefined,
    vars: {
      installer: installerVars(plan, image, { ...image, fileName: fsImageFileName(plan.image.name, SHA), imageBytes: 1 }),
      rescue: rescueVars(plan),
      ...(plan.diskless ? { diskless: disklessVars(plan, { ...IMAGE, fileName: squashfsFileName(plan.image.name, SHA) }) } : {}),
    } as Record<string, Record<string, ShellValue>>,
    pacman: plan.image.distro === 'arch' ? pacmanConf(plan.image, { cacheDir: '/c', gpgDir: '/g' }) : undefined,
    argv: [
      ...(plan.image.distro === 'debian' ? [mmdebstrapArgv(plan.image, '/w/root')] : [pacstrapArgv('/w/pacman.conf', '/w/root', archPackages(plan.image))]),
      ...(plan.installerEnv.type === 'builtin' ? [installerRootArgv('/w/env', { suite: plan.installerEnv.suite, mirror: plan.installerEnv.mirror })] : []),
    ],
    // Every name a build writes under dist/ that comes from the spec, relative to its directory.
    fileNames: [
      ['images', imageFileName(plan.image.name, SHA)], ['images', squashfsFileName(plan.image.name, SHA)], ['images', fsImageFileName(plan.image.name, SHA)],
      ['pxe', plan.os.kernel], ['pxe', plan.os.initramfs], ...(plan.diskless ? [['pxe', plan.diskless.modules]] : []),
    ] as [string, string][],
  };
}
type Rendered = Awaited<ReturnType<typeof renderAll>>;

// What a config's lines are, without the values: a value that adds, ends or comments out a line shows.
const dnsmasqShape = (conf: string) => conf.split('\n').map((l) => (l.startsWith('#') ? '#' : l.split('=')[0]));
const nginxShape = (conf: string) => conf.split('\n').map((l) => (l.trim().startsWith('#') ? '#' : `${l.trim().split(/\s+/)[0]}…${l.trim().slice(-1)}`));
const scriptShape = (text: string) => text.split('\n').map((l) => l.split(/\s/)[0]);
// Names may legitimately change with a valid value (os.name "arch-linux-x", repo "core-x"); the shape may not.
const pacmanShape = (conf: string) => conf.split('\n').map((l) => (l.startsWith('[') ? '[…]' : l.split(' = ')[0]));
const treeShape = (t: { files: Record<string, string>; links: Record<string, string> }) => ({
  files: Object.values(t.files).map((text) => JSON.stringify(scriptShape(text))).sort(),
  links: Object.keys(t.links).length,
  dangling: Object.values(t.links).filter((target) => !(target in t.files)),
});
// The first line carries the spec's hash, which every change moves: the tools run once per distinct rest.
const body = (conf: string) => conf.slice(conf.indexOf('\n'));
const optionNames = (argv: string[]) => argv.filter((a) => a.startsWith('-')).map((a) => a.split('=')[0]);

/** The data prologue, run by bash, prints back every value: exactly what the plan holds, nothing executed. */
function prologueProbe(vars: Record<string, ShellValue>): { script: string; expected: string } {
  const print = Object.entries(vars).map(([k, v]) =>
    Array.isArray(v) ? `for x in "\${${k}[@]}"; do printf '%s\\0' "$x"; done; printf '\\1'` : `printf '%s\\0\\1' "$${k}"`,
  );
  const expected = Object.values(vars)
    .map((v) => (Array.isArray(v) ? v.map((e) => `${String(e)}\0`).join('') : `${String(v)}\0`) + '\x01')
    .join('');
  return { script: `${dataPrologue('fuzz', vars)}\n${print.join('\n')}\n`, expected };
}

let ws: Awaited<ReturnType<typeof workspace>>;
beforeAll(async () => {
  ws = await workspace('pc-fuzz-');
});
afterAll(() => ws.cleanup());

describe('spec fuzz: every string field against hostile values', () => {
  const fields = stringFields(ClusterSpecSchema as unknown as Schema);

  it('finds the string fields of every branch', () => {
    for (const f of ['$schema', 'cluster', 'nodes[0].mac', 'nodes[0].reboot[0]', 'boot.os.kernelArgs[0]', 'image.repos[0]', 'image.components[0]', 'disk.target.byId', 'disk.target.byPath', 'users[0].sshKeys[0]', 'rescue.sshKeys[0]', 'installerEnv.mirror', 'installerEnv.suite', 'installerEnv.url', 'installerEnv.path', 'installerEnv.sha512', 'installerEnv.keymap'])
      expect([...fields.keys()]).toContain(f);
  });

  it('each is refused at its path or renders inert', { timeout: 120_000 }, async () => {
    const all = bases();
    const baseRender = await Promise.all(all.map((b) => renderAll(planCluster(validateSpec(b)))));
    let refused = 0;
    let cases = 0;
    const accepted: { field: string; what: string; r: Rendered; base: number }[] = [];
    const problems: string[] = [];
    for (const [field, path] of fields) {
      // The base that holds the field (else one where its parent exists): every branch is in some base.
      let base = all.findIndex((b) => has(b, path));
      if (base < 0) base = all.findIndex((b) => has(b, path.slice(0, -1)));
      if (base < 0) {
        problems.push(`${field}: in no base spec of this test: add a value for it to bases()`);
        continue;
      }
      // Each hostile value alone, and appended to the base's valid value (a key comment, a URL's tail).
      const valid = path.reduce<any>((x, k) => x?.[k], all[base]);
      const placements: [string, string][] = HOSTILE.flatMap(([what, v]): [string, string][] => [[what, v], ...(typeof valid === 'string' ? [[`${valid} + ${what}`, valid + v] as [string, string]] : [])]);
      for (const [what, value] of placements) {
        cases++;
        const spec = structuredClone(all[base]!);
        setAt(spec, path, value);
        let plan: Plan;
        try {
          plan = planCluster(validateSpec(spec));
        } catch (e) {
          if (!(e instanceof SpecError)) throw e;
          // At the field, or at the object or list it belongs to (an anyOf of literals, "one root partition").
          const at = (p: string) => p === field || field.startsWith(`${p}.`) || field.startsWith(`${p}[`);
          if (e.issues.some((i) => at(i.path))) refused++;
          else problems.push(`${field} = ${what}: refused, but not at its path: ${e.issues.map((i) => i.path).join(', ')}`);
          continue;
        }
        try {
          accepted.push({ field, what, r: await renderAll(plan), base });
        } catch (e) {
          problems.push(`${field} = ${what}: passed validation but a renderer threw: ${(e as Error).message}`);
        }
      }
    }

    const ran = new Set<string>();
    let toolRuns = 0;
    let bashRuns = 0;
    for (const { field, what, r, base } of accepted) {
      const b = baseRender[base]!;
      const where = `${field} = ${what}`;
      const same = (name: string, x: unknown, y: unknown) => {
        if (JSON.stringify(x) !== JSON.stringify(y)) problems.push(`${where}: ${name} changed shape`);
      };
      same('dnsmasq.conf', dnsmasqShape(r.dnsmasq), dnsmasqShape(b.dnsmasq));
      same('nginx.conf', nginxShape(r.nginx), nginxShape(b.nginx));
      same('boot servers\' configs', r.servers.map(([d, n]) => [dnsmasqShape(d), nginxShape(n)]), b.servers.map(([d, n]) => [dnsmasqShape(d), nginxShape(n)]));
      same('pxelinux.cfg', treeShape(r.pxelinux), treeShape(b.pxelinux));
      same('iPXE', treeShape(r.ipxe), treeShape(b.ipxe));
      same('pacman.conf', r.pacman && pacmanShape(r.pacman), b.pacman && pacmanShape(b.pacman));
      same('argv options', r.argv.map(optionNames), b.argv.map(optionNames));
      if (r.sysrescue !== undefined) same('sysrescue.yaml keys', Object.values(parse(r.sysrescue).sysconfig.authorized_keys), Object.values(parse(b.sysrescue!).sysconfig.authorized_keys));
      for (const [dir, name] of [...r.fileNames, ...Object.keys({ ...r.pxelinux.files, ...r.pxelinux.links }).map((n) => ['pxe/pxelinux.cfg', n] as [string, string])]) {
        try {
          insideDir(join(ws.dir, 'dist', dir), name);
        } catch {
          problems.push(`${where}: file name ${JSON.stringify(name)} leaves ${dir}/`);
        }
      }
      // The real tools, once per distinct config.
      if (!ran.has(body(r.dnsmasq))) {
        ran.add(body(r.dnsmasq));
        const file = join(ws.dir, `dnsmasq-${toolRuns}.conf`);
        await writeFile(file, r.dnsmasq);
        const d = await run(['dnsmasq', '--test', `--conf-file=${file}`], { nothrow: true });
        if (!/syntax check OK/.test(d.stderr + d.stdout)) problems.push(`${where}: dnsmasq --test: ${d.stderr.trim()}`);
        toolRuns++;
      }
      if (!ran.has(body(r.nginx))) {
        ran.add(body(r.nginx));
        const prefix = join(ws.dir, `nginx-${toolRuns}`);
        await mkdir(prefix, { recursive: true });
        const conf = await adaptNginxConf(r.nginx, { prefix, listen: '127.0.0.1:18081', root: ws.dir });
        const n = await run(['nginx', '-t', '-p', prefix, '-c', conf], { nothrow: true });
        if (!/test is successful/.test(n.stderr)) problems.push(`${where}: nginx -t: ${n.stderr.trim()}`);
        toolRuns++;
      }
      const key = JSON.stringify(r.vars);
      if (!ran.has(key)) {
        ran.add(key);
        // One bash for the installer, rescue and diskless prologues, each in its own subshell.
        const probes = Object.values(r.vars).map(prologueProbe);
        const out = await run(['bash', '--norc', '--noprofile', '-c', probes.map((p) => `(\n${p.script})`).join('\n')], { cwd: ws.dir, nothrow: true });
        bashRuns++;
        if (out.stdout !== probes.map((p) => p.expected).join(''))
          problems.push(`${where}: the ${Object.keys(r.vars).join('/')} prologues do not evaluate to the plan's values (${out.stderr.trim()})`);
      }
    }
    const pwned = await access(MARK).then(() => true, () => false);
    if (pwned) problems.push(`${MARK} exists: an injected command ran`);

    console.log(
      `spec-fuzz: ${fields.size} string fields × ${HOSTILE.length} hostile values (alone, and after the field's valid value) = ${cases} cases: ` +
        `${refused} refused at their path, ${accepted.length} accepted and rendered inert (${toolRuns} dnsmasq --test / nginx -t runs, ${bashRuns} bash runs)`,
    );
    expect(problems).toEqual([]);
    expect(refused + accepted.length).toBe(cases);
    expect(cases).toBeGreaterThan(fields.size * HOSTILE.length);
  });
});
