/**
 * The plan: the spec fully resolved by a pure function. Renderers and stages read only the plan and
 * never apply defaults of their own.
 */
import type { NormalizedPartition, NormalizedSpec } from '../spec/normalized.ts';
import { formatIpv4, parseIpv4, subnetOf } from '../spec/values.ts';
import { pxelinuxNodeFile } from '../layout.ts';
import { PLANNED_DEFAULTS, type DiskTargetT, type InstallerEnvSpecT, type PowerSpecT } from '../spec/schema.ts';
import { hashInputs } from '../lib/hash.ts';
import { planBootServers, type PlanBootServer } from './boot-servers.ts';

interface ImageBase {
  /** Used in file names, e.g. "debian". */
  name: string;
  /** Debian suite e.g. "bookworm"; arch: free text e.g. "rolling". */
  release: string;
  /** Extra packages beyond the backend's base set. */
  packages: string[];
  /** A prepared root tree: skip bootstrapping, use it as is (tests, bring-your-own). */
  rootfs?: string;
}

/**
 * The golden image as the image stages take it: what the spec asks for, every default applied.
 * Debian's mirror is null for "mmdebstrap's own default" (deb.debian.org plus -updates and -security), which
 * is not one URL we could write down; Arch has no such default, so its mirror is always a URL (the rules
 * require one unless a prepared rootfs is used, and then it is never read: "").
 */
export type DebianImage = ImageBase & { distro: 'debian'; mirror: string | null; components: string[] };
export type ArchImage = ImageBase & { distro: 'arch'; mirror: string; repos: string[] };
export type ImageSpec = DebianImage | ArchImage;

/** The installer environment, resolved: mirror null = mmdebstrap's own default, as for the image. */
export type PlanInstallerEnv =
  | { type: 'builtin'; mirror: string | null; suite: string }
  | {
      type: 'systemrescue';
      /** Exactly one of url or path (the rules refuse both and neither). */
      source: { url: string } | { path: string };
      /** Every digest the spec gives, sha256 first (it names the download cache entry); all are checked. Never empty (a rule). */
      digests: { algo: 'sha256' | 'sha512'; hex: string }[];
      keymap: string;
    };

export type Firmware = 'bios' | 'uefi';

export interface PlanHost {
  name: string;
  fqdn: string;
  mac: string;
  ip?: string;
}

/** A secret named by the spec, read only inside a power call: a file on node0 or an environment variable. */
export type SecretRef = { file: string } | { env: string };

/** APC PowerNet-MIB sPDUOutletCtl: the outlet number is appended; 1 on, 2 off, 3 reboot. */
export const APC_OUTLET_CTL = { oid: '.1.3.6.1.4.1.318.1.1.4.4.2.1.3', on: 1, off: 2, cycle: 3 } as const;

/**
 * A node's power, resolved: the node's own spec, else the cluster-wide one, else `reboot` (as a command's
 * cycle), else ssh. Defaults are filled and {name}, {mac}, {ip} substituted; secrets stay references.
 */
export type PlanPower =
  | { type: 'ipmi'; host: string; port: number; user: string; password: SecretRef; interface: 'lanplus' | 'lan'; cipherSuite?: number }
  | { type: 'redfish'; url: string; systemId?: string; user: string; password: SecretRef; insecure: boolean; caFile?: string }
  | {
      type: 'pdu';
      host: string;
      port: number;
      version: '2c' | '3';
      /** v2c */
      community?: SecretRef;
      /** v3 */
      user?: string;
      authProtocol?: 'SHA' | 'MD5';
      auth?: SecretRef;
      privProtocol?: 'AES' | 'DES';
      priv?: SecretRef;
      outlets: number[];
      scheme: { oid: string; on: number; off: number; cycle?: number };
      offSeconds: number;
    }
  | { type: 'ssh' }
  | { type: 'command'; on?: string[]; off?: string[]; cycle?: string[]; status?: string[] };

export interface PlanNode extends PlanHost {
  firmware: Firmware;
  loader: 'pxelinux' | 'ipxe';
  /** The pxelinux.cfg file this node's link points at now. */
  profile: string;
  /** pxelinux's per-MAC file name, 01-aa-bb-cc-dd-ee-ff. */
  pxeFile: string;
  /** How node0 powers it (the spec's `reboot` became a command's cycle here). */
  power: PlanPower;
  /** Overrides disk.target for this node. */
  diskTarget?: DiskTargetT;
  /** The boot server it boots from (bootServers[].name), or null: node0 serves it. */
  bootServer: string | null;
  /** What it fetches kernels, scripts and images from: node0's admin.httpBase or its boot server's. */
  httpBase: string;
}

export interface PlanPartition extends NormalizedPartition {
  /** 1-based partition number on the disk. */
  number: number;
}

export interface Plan {
  specHash: string;
  cluster: string;
  domain: string;
  admin: {
    hostname: string;
    interface: string;
    ip: string;
    prefix: number;
    netmask: string;
    network: string;
    httpBase: string;
    servedRoot: string;
  };
  /** server: node0 hands out addresses; proxy: another DHCP server does, node0 only answers network-boot clients. */
  dhcp: { mode: 'server'; rangeStart: string; rangeEnd: string; leaseTime: string } | { mode: 'proxy' };
  appliances: PlanHost[];
  nodes: PlanNode[];
  /** Boot servers between node0 and racks of nodes (empty: node0 serves every node). */
  bootServers: PlanBootServer[];
  /** default: what a MAC without a link boots (discover when boot.discover is on, else boot.default). */
  profiles: { installer: 'installer'; rescue: 'rescue'; os: string; default: string; all: string[]; diskless?: 'diskless'; discover?: 'discover' };
  /** Present when boot.discover is on: unknown machines boot the inventory script, then this. */
  discover?: { then: 'poweroff' | 'wait' };
  /**
   * httpBoot: UEFI HTTP-boot clients (client-arch 16) are answered with iPXE by URL. loaders: which loaders
   * anything boots (unknown clients boot `loader`, each node its own), so which ones are copied and answered.
   */
  boot: { timeout: number; loader: 'pxelinux' | 'ipxe'; httpBoot: boolean; loaders: { pxelinux: boolean; ipxe: boolean } };
  /** Present when boot.diskless is on. modules: the golden kernel's modules initramfs, relative to the TFTP root. */
  diskless?: { modules: string };
  os: {
    name: string;
    bootFrom: 'network' | 'disk';
    kernelArgs: string[];
    serialConsole?: string;
    /** pxelinux's SERIAL line for serialConsole: only a ttyS<n> UART is one it drives (else null); 115200 when no speed is given. */
    pxelinuxSerial: { port: number; speed: number } | null;
    rootLabel: string;
    /** Names relative to the TFTP root. */
    kernel: string;
    initramfs: string;
  };
  disk: { table: 'gpt' | 'msdos'; target: DiskTargetT; minBytes: number; partitions: PlanPartition[] };
  image: ImageSpec & { zstdLevel: number; installMode: 'tarball' | 'image' };
  users: { name: string; sshKeys: string[]; sudo: boolean; shell: string }[];
  rescue: { user: string; sshKeys: string[] };
  phoneHome: {
    path: string;
    url: string;
    afterInstall: 'poweroff' | 'reboot' | 'kexec';
    watcherPort: number;
    timeoutMinutes: number;
    /** Every watched phase's deadline in minutes: the spec's, else timeoutMinutes. */
    deadlines: Record<DeadlinePhase, number>;
    retries: number;
    park: 'off' | 'rescue';
  };
  installerEnv: PlanInstallerEnv;
}

/** The phases a node can be overdue in: waiting for its first report, then each install phase. */
export const DEADLINE_PHASES = ['requested', 'start', 'disk', 'partition', 'download', 'extract', 'configure'] as const;
export type DeadlinePhase = (typeof DEADLINE_PHASES)[number];

export function planCluster(spec: NormalizedSpec): Plan {
  const adminIp = parseIpv4(spec.admin.ip)!;
  const net = subnetOf(adminIp, spec.admin.prefix);
  const httpBase = spec.admin.httpBase ?? `http://${spec.admin.ip}`;
  const os = spec.boot.os;
  const fqdn = (name: string) => `${name}.${spec.domain}`;
  const bootsWith = (loader: 'pxelinux' | 'ipxe') => spec.boot.loader === loader || spec.nodes.some((n) => (n.loader ?? spec.boot.loader) === loader);
  const rootLabel = spec.disk.partitions.find((p) => p.mountpoint === '/')!.label!;
  const bootServers = planBootServers(spec);
  const serverOf = (name: string) => bootServers.find((b) => b.nodes.includes(name)) ?? null;
  return {
    specHash: hashInputs(spec),
    cluster: spec.cluster,
    domain: spec.domain,
    admin: {
      hostname: spec.admin.hostname,
      interface: spec.admin.interface,
      ip: spec.admin.ip,
      prefix: spec.admin.prefix,
      netmask: formatIpv4(net.netmask),
      network: formatIpv4(net.network),
      httpBase,
      servedRoot: spec.admin.servedRoot,
    },
    dhcp:
      spec.dhcp.mode === 'proxy'
        ? { mode: 'proxy' }
        : { mode: 'server', rangeStart: spec.dhcp.rangeStart!, rangeEnd: spec.dhcp.rangeEnd!, leaseTime: spec.dhcp.leaseTime ?? PLANNED_DEFAULTS.leaseTime },
    appliances: spec.appliances.map((a) => ({ name: a.name, fqdn: fqdn(a.name), mac: a.mac, ...(a.ip ? { ip: a.ip } : {}) })),
    nodes: spec.nodes.map((n) => ({
      name: n.name,
      fqdn: fqdn(n.name),
      mac: n.mac,
      ...(n.ip ? { ip: n.ip } : {}),
      firmware: n.firmware,
      loader: n.loader ?? spec.boot.loader,
      profile: resolveProfile(n.profile ?? spec.boot.default, os.name),
      pxeFile: pxelinuxNodeFile(n.mac),
      power: planPower(n.power ?? spec.power ?? (n.reboot ? { type: 'command', cycle: n.reboot } : { type: 'ssh' }), n),
      ...(n.diskTarget ? { diskTarget: n.diskTarget } : {}),
      bootServer: serverOf(n.name)?.name ?? null,
      httpBase: serverOf(n.name)?.httpBase ?? httpBase,
    })),
    bootServers,
    profiles: {
      installer: 'installer', rescue: 'rescue', os: os.name, default: spec.boot.discover ? 'discover' : resolveProfile(spec.boot.default, os.name),
      all: ['installer', 'rescue', os.name, ...(spec.boot.diskless ? ['diskless'] : []), ...(spec.boot.discover ? ['discover'] : [])],
      ...(spec.boot.diskless ? { diskless: 'diskless' as const } : {}),
      ...(spec.boot.discover ? { discover: 'discover' as const } : {}),
    },
    ...(spec.boot.discover ? { discover: { then: spec.boot.discoverThen } } : {}),
    boot: {
      timeout: spec.boot.timeout,
      loader: spec.boot.loader,
      httpBoot: spec.boot.httpBoot,
      loaders: { pxelinux: bootsWith('pxelinux'), ipxe: bootsWith('ipxe') },
    },
    ...(spec.boot.diskless ? { diskless: { modules: `${os.name}-diskless-modules` } } : {}),
    os: {
      name: os.name,
      bootFrom: os.bootFrom,
      kernelArgs: os.kernelArgs,
      ...(os.serialConsole ? { serialConsole: os.serialConsole } : {}),
      pxelinuxSerial: pxelinuxSerial(os.serialConsole),
      rootLabel,
      kernel: `${os.name}-kernel`,
      initramfs: `${os.name}-initramfs`,
    },
    disk: {
      table: spec.disk.table,
      target: spec.disk.target,
      minBytes: spec.disk.minBytes,
      partitions: spec.disk.partitions.map((p, i) => ({ ...p, number: i + 1 })),
    },
    image: {
      name: spec.image.name,
      release: spec.image.release,
      packages: spec.image.packages,
      ...imageSource(spec.image),
      ...(spec.image.rootfs ? { rootfs: spec.image.rootfs } : {}),
      zstdLevel: spec.image.zstdLevel,
      installMode: spec.image.installMode,
    },
    users: spec.users.map((u) => ({ name: u.name, sshKeys: u.sshKeys, sudo: u.sudo, shell: u.shell })),
    rescue: { user: spec.rescue.user, sshKeys: spec.rescue.sshKeys },
    phoneHome: {
      path: spec.phoneHome.path,
      url: httpBase + spec.phoneHome.path,
      afterInstall: spec.phoneHome.afterInstall,
      watcherPort: spec.phoneHome.watcherPort,
      timeoutMinutes: spec.phoneHome.timeoutMinutes,
      deadlines: Object.fromEntries(DEADLINE_PHASES.map((p) => [p, spec.phoneHome.deadlines?.[p] ?? spec.phoneHome.timeoutMinutes])) as Record<DeadlinePhase, number>,
      retries: spec.phoneHome.retries,
      park: spec.phoneHome.park,
    },
    installerEnv: installerEnv(spec.installerEnv),
  };
}

/** {name}, {mac}, {ip} of one node; the rules refuse {ip} where the node has none, so '' never reaches a call. */
export function fillNode(value: string, node: { name: string; mac: string; ip?: string }): string {
  return value.replace(/\{(name|mac|ip)\}/g, (_m, k: 'name' | 'mac' | 'ip') => node[k] ?? '');
}

/** One secret reference from a file/env pair of fields (the rules made sure exactly one is there). */
function secretRef(file: string | undefined, env: string | undefined): SecretRef | undefined {
  return file !== undefined ? { file } : env !== undefined ? { env } : undefined;
}

/** The power spec that applies to a node, resolved: defaults filled, placeholders substituted, secrets as references. */
function planPower(p: PowerSpecT, node: { name: string; mac: string; ip?: string }): PlanPower {
  const d = PLANNED_DEFAULTS.power;
  const fill = (v: string) => fillNode(v, node);
  switch (p.type) {
    case 'ipmi':
      return {
        type: 'ipmi', host: fill(p.host), port: p.port ?? d.ipmiPort, user: p.user, password: secretRef(p.passwordFile, p.passwordEnv)!,
        interface: p.interface ?? d.ipmiInterface, ...(p.cipherSuite !== undefined ? { cipherSuite: p.cipherSuite } : {}),
      };
    case 'redfish':
      return {
        type: 'redfish', url: fill(p.url), ...(p.systemId !== undefined ? { systemId: p.systemId } : {}), user: p.user, password: secretRef(p.passwordFile, p.passwordEnv)!,
        insecure: p.insecure ?? d.redfishInsecure, ...(p.caFile !== undefined ? { caFile: p.caFile } : {}),
      };
    case 'pdu': {
      const version = p.version ?? d.snmpVersion;
      const scheme = p.scheme === undefined || p.scheme === 'apc' ? { ...APC_OUTLET_CTL } : { oid: p.scheme.oid, on: p.scheme.on, off: p.scheme.off, ...(p.scheme.cycle !== undefined ? { cycle: p.scheme.cycle } : {}) };
      const common = { type: 'pdu' as const, host: fill(p.host), port: p.port ?? d.snmpPort, outlets: p.outlets, scheme, offSeconds: p.offSeconds ?? d.offSeconds };
      if (version === '2c') return { ...common, version, community: secretRef(p.communityFile, p.communityEnv)! };
      const priv = secretRef(p.privPasswordFile, p.privPasswordEnv);
      return {
        ...common, version, user: p.user!, authProtocol: p.authProtocol ?? d.snmpAuthProtocol, auth: secretRef(p.passwordFile, p.passwordEnv)!,
        ...(priv && p.privProtocol ? { privProtocol: p.privProtocol, priv } : {}),
      };
    }
    case 'ssh':
      return { type: 'ssh' };
    case 'command': {
      const argv = (a: string[] | undefined) => a?.map(fill);
      return { type: 'command', ...Object.fromEntries((['on', 'off', 'cycle', 'status'] as const).filter((k) => p[k]).map((k) => [k, argv(p[k])])) };
    }
  }
}

const listOr = (list: string[] | undefined, fallback: readonly string[]) => (list?.length ? list : [...fallback]);

function imageSource(image: NormalizedSpec['image']): Pick<DebianImage, 'distro' | 'mirror' | 'components'> | Pick<ArchImage, 'distro' | 'mirror' | 'repos'> {
  if (image.distro === 'debian') return { distro: 'debian', mirror: image.mirror ?? null, components: listOr(image.components, PLANNED_DEFAULTS.components) };
  return { distro: 'arch', mirror: image.mirror ?? '', repos: listOr(image.repos, PLANNED_DEFAULTS.archRepos) };
}

function installerEnv(env: InstallerEnvSpecT): PlanInstallerEnv {
  if (env.type === 'builtin') return { type: 'builtin', mirror: env.mirror ?? null, suite: env.suite ?? PLANNED_DEFAULTS.installerSuite };
  return {
    type: 'systemrescue',
    source: env.url !== undefined ? { url: env.url } : { path: env.path! },
    digests: [
      ...(env.sha256 !== undefined ? [{ algo: 'sha256' as const, hex: env.sha256 }] : []),
      ...(env.sha512 !== undefined ? [{ algo: 'sha512' as const, hex: env.sha512 }] : []),
    ],
    keymap: env.keymap ?? PLANNED_DEFAULTS.keymap,
  };
}

function pxelinuxSerial(console: string | undefined): Plan['os']['pxelinuxSerial'] {
  const m = console === undefined ? null : /^ttyS(\d+)(?:,(\d+))?/.exec(console);
  return m ? { port: Number(m[1]), speed: m[2] !== undefined ? Number(m[2]) : 115200 } : null;
}

function resolveProfile(profile: string, osName: string): string {
  return profile === 'os' ? osName : profile;
}
