/**
 * The cluster spec: one TypeBox definition gives the TypeScript types (Static<…>) and the JSON Schema
 * that ajv validates and editors read (schema/portacluster.schema.json, emitted by `npm run schema`).
 * Every field carries a description and, where one makes sense, a default.
 */
import { Type as T, type Static } from '@sinclair/typebox';
import { POWER_DEFAULTS, PowerSpec } from './schema-power.ts';
import { str } from './patterns.ts';

/**
 * Defaults the schema cannot fill itself (inside a union, or where an empty list means the same as none):
 * stated here, beside the fields' descriptions, and applied once by planCluster.
 */
export const PLANNED_DEFAULTS = {
  components: ['main'],
  archRepos: ['core', 'extra'],
  installerSuite: 'bookworm',
  keymap: 'us',
  // dnsmasq's lease time, on node0's network (server mode) and on each boot server's rack.
  leaseTime: '1h',
  // Inside the power union (ajv would apply one branch's defaults to another's object): schema-power.ts.
  power: POWER_DEFAULTS,
} as const;

const Name = str('hostLabel', 'An RFC 1123 host name label.');
const Mac = str('mac', 'A MAC address, any of aa:bb:cc:dd:ee:ff, AA-BB-…, aabb.ccdd.eeff, aabbccddeeff; stored as lowercase colon form.');
const Ipv4 = str('ipv4', 'An IPv4 address.');
const Size = T.Union([str('size', 'A size with a unit.'), T.Integer({ minimum: 1 })], {
  description: 'A size: bytes as an integer, or a string with a binary unit (512M, 20G, 1.5T; K/M/G/T = KiB/MiB/GiB/TiB).',
});
const SshKey = str('sshKey', 'One OpenSSH public key line (type, base64, optional comment).');

export const ProfileName = str(
  'profile',
  'A boot profile: "installer", "rescue", the name of the installed OS profile (os.name), "os" (the same), "diskless" (with boot.diskless).',
);

export const AdminSpec = T.Object(
  {
    hostname: str('hostLabel', 'Host name of the admin node.', { default: 'node0' }),
    interface: str('iface', 'The cluster-facing interface dnsmasq binds to (never a foreign network).'),
    ip: Ipv4,
    prefix: T.Integer({ description: 'Prefix length of the cluster subnet.', minimum: 8, maximum: 30, default: 24 }),
    httpBase: T.Optional(
      str('httpBase', 'Base URL nodes fetch from; must use an IP (no DNS at fetch time). Default http://<ip>.'),
    ),
    servedRoot: str('absPath', 'Where the dist/ tree is served from on node0.', { default: '/srv/public' }),
  },
  { additionalProperties: false, description: 'The admin node (node0): runs dnsmasq (DHCP + TFTP) and nginx.' },
);

export const DhcpSpec = T.Object(
  {
    mode: T.Union([T.Literal('server'), T.Literal('proxy')], {
      description:
        "server: node0's dnsmasq is the network's DHCP server (addresses, fixed IPs, names). proxy: another DHCP server (e.g. a home router) hands out the addresses and node0 only tells network-boot clients what to boot; the range, lease time and fixed IPs then belong to that server.",
      default: 'server',
    }),
    rangeStart: T.Optional(Ipv4),
    rangeEnd: T.Optional(Ipv4),
    // No schema default: in proxy mode a lease time the user wrote is an error, so it must stay visible.
    leaseTime: T.Optional(str('leaseTime', `dnsmasq lease time: 1h, 30m, 12h, infinite. Server mode only; default ${PLANNED_DEFAULTS.leaseTime}.`)),
  },
  { additionalProperties: false, description: 'DHCP on the cluster network: the dynamic range for unknown clients (server mode), or proxy DHCP beside another server.' },
);

export const ApplianceSpec = T.Object(
  { name: Name, mac: Mac, ip: T.Optional(Ipv4) },
  { additionalProperties: false, description: 'A device that only gets DHCP (switch, PDU): never boots a profile.' },
);

export const Loader = T.Union([T.Literal('pxelinux'), T.Literal('ipxe')], {
  description: 'Network boot loader: pxelinux (TFTP) or iPXE (HTTP for everything after the loader).',
});

export const DiskTarget = T.Union(
  [
    T.Object({ byId: str('diskById', 'Name under /dev/disk/by-id.') }, { additionalProperties: false }),
    T.Object({ byPath: str('diskByPath', 'Name under /dev/disk/by-path.') }, { additionalProperties: false }),
    T.Object({ onlyNonRemovable: T.Literal(true, { description: 'The only non-removable disk; several is an error.' }) }, { additionalProperties: false }),
  ],
  { description: 'How the installer picks the target disk.' },
);

export const NodeSpec = T.Object(
  {
    name: Name,
    mac: Mac,
    ip: T.Optional(Ipv4),
    firmware: T.Union([T.Literal('bios'), T.Literal('uefi')], { description: 'How the node PXE-boots.', default: 'bios' }),
    profile: T.Optional(ProfileName),
    loader: T.Optional(Loader),
    reboot: T.Optional(
      T.Array(str('rebootWord', 'One argv element.'), {
        description: 'Command line (argv) that reboots this node, run on node0 by `--reboot`; {name}, {mac}, {ip} are substituted. The same as power: {type: "command", cycle: […]}.',
      }),
    ),
    power: T.Optional(PowerSpec),
    diskTarget: T.Optional(T.Union([DiskTarget], { description: "This node's install disk, instead of disk.target (portacluster enroll proposes one from the node's inventory)." })),
  },
  { additionalProperties: false, description: 'A cluster node that PXE-boots.' },
);

export const OsProfileSpec = T.Object(
  {
    name: str('profile', 'Profile name of the installed OS (the pxelinux.cfg file name), e.g. arch-linux.', { default: 'linux' }),
    bootFrom: T.Union([T.Literal('network'), T.Literal('disk')], {
      description: 'network: kernel + initramfs from node0 with root= the root partition (no boot loader on disk); disk: GRUB installed.',
      default: 'network',
    }),
    kernelArgs: T.Array(str('kernelWord', 'One kernel command-line word.'), { description: 'Extra kernel command-line words.', default: [] }),
    serialConsole: T.Optional(str('serial', 'Serial console for kernel and getty.')),
  },
  { additionalProperties: false },
);

export const BootSpec = T.Object(
  {
    default: ProfileName,
    os: OsProfileSpec,
    timeout: T.Integer({ description: 'pxelinux TIMEOUT in tenths of a second.', default: 10, minimum: 0 }),
    loader: T.Union([T.Literal('pxelinux'), T.Literal('ipxe')], { description: 'Cluster-wide network boot loader; nodes may override.', default: 'pxelinux' }),
    httpBoot: T.Boolean({
      description:
        'Answer x86-64 UEFI firmware that boots over HTTP (DHCP client-arch 16, vendor class HTTPClient) with an http:// URL to iPXE (pxe/snponly.efi), so such nodes need no TFTP. Needs every node on iPXE.',
      default: false,
    }),
    diskless: T.Boolean({
      description: 'Also build the "diskless" profile: the golden image as a squashfs that nodes fetch, verify and run from RAM (overlay on tmpfs), never touching a disk. Needs installerEnv.type "builtin".',
      default: false,
    }),
    discover: T.Boolean({
      description:
        'Also build the "discover" profile and boot it on every MAC the spec does not know: the built-in environment collects the machine\'s inventory (DMI, CPUs, RAM, disks with their by-id and by-path names, NICs, the BMC\'s address, firmware mode) without writing to any disk and reports it to the watcher (`portacluster discovered`, then `portacluster enroll`). Needs installerEnv.type "builtin".',
      default: false,
    }),
    discoverThen: T.Union([T.Literal('poweroff'), T.Literal('wait')], {
      description: 'What a discovered machine does after reporting: power off, or wait (a shell on the console) until it is enrolled and rebooted.',
      default: 'poweroff',
    }),
  },
  { additionalProperties: false, description: 'Boot profiles and which one unknown/unlinked MACs boot.' },
);

export const ImageSpecSchema = T.Object(
  {
    name: Name,
    distro: T.Union([T.Literal('arch'), T.Literal('debian')], { description: 'Bootstrap backend: pacstrap or mmdebstrap.' }),
    release: str('release', 'Debian suite (bookworm) or a label for Arch (rolling).'),
    packages: T.Array(str('packageName', 'A package name.'), { description: 'Packages beyond the backend base set.', default: [] }),
    mirror: T.Optional(
      str('mirror', "Debian archive URL (default: mmdebstrap's own, http://deb.debian.org/debian plus -updates and -security for a stable suite; the build host's apt sources are not used), or an Arch Server= URL ($repo/$arch) or file:// local repo (required)."),
    ),
    components: T.Optional(T.Array(str('component', 'A Debian component.'), { description: `Debian components (default ${PLANNED_DEFAULTS.components.join(', ')}).` })),
    repos: T.Optional(T.Array(str('archRepo', 'An Arch repository name.'), { description: `Arch repositories for pacman.conf (default ${PLANNED_DEFAULTS.archRepos.join(', ')}).` })),
    rootfs: T.Optional(str('localPath', 'Use this prepared root tree instead of bootstrapping (bring your own).')),
    // 3 packs the 698 MB Debian tree in ~2 s (docs/figures.md, bench/pack.ts); in the lab's QEMU runs on a
    // 2-core machine, 19 took ~100 s to save each node ~1 s of download.
    zstdLevel: T.Integer({ description: 'zstd level of the tarball.', default: 3, minimum: 1, maximum: 19 }),
    installMode: T.Union([T.Literal('tarball'), T.Literal('image')], {
      description:
        'How nodes install the image. tarball: mkfs the root partition and extract the tarball into it. image: write an ext4 filesystem image (built in addition to the tarball) onto the root partition, give it a fresh UUID and grow it to fill the partition; the root must be ext4 and no partition but the ESP may be mounted inside it.',
      default: 'tarball',
    }),
  },
  { additionalProperties: false, description: 'The golden image every node is reimaged with.' },
);

export const PartitionSpec = T.Object(
  {
    size: T.Union([str('sizeOrRest', 'A size with a unit, or "rest".'), T.Integer({ minimum: 1 })], {
      description: 'Size: bytes as an integer, a string with a binary unit (512M, 20G), or "rest" for what is left (last partition only).',
    }),
    type: T.Union([T.Literal('esp'), T.Literal('bios_grub'), T.Literal('swap'), T.Literal('linux')]),
    filesystem: T.Optional(
      T.Union([T.Literal('ext4'), T.Literal('xfs'), T.Literal('vfat'), T.Literal('swap')], {
        description: 'Filesystem; default by type: esp→vfat, swap→swap, linux→ext4, bios_grub→none.',
      }),
    ),
    mountpoint: T.Optional(str('absPath', 'Absolute mount point, e.g. / or /boot/efi.')),
    label: T.Optional(str('partLabel', 'Filesystem label (also the partition name on GPT).')),
  },
  { additionalProperties: false },
);

export const DiskSpec = T.Object(
  {
    table: T.Union([T.Literal('gpt'), T.Literal('msdos')], { default: 'gpt' }),
    target: DiskTarget,
    minSize: T.Optional(T.Union([Size], { description: 'Smallest disk this layout must fit (and the installer accepts).' })),
    partitions: T.Array(PartitionSpec, { minItems: 1 }),
  },
  { additionalProperties: false, description: 'The disk layout the installer creates.' },
);

export const UserSpec = T.Object(
  {
    name: str('userName', 'Login name (not root).'),
    sshKeys: T.Array(SshKey, { default: [] }),
    sudo: T.Boolean({ description: 'Passwordless sudo.', default: false }),
    shell: str('absPath', 'Login shell.', { default: '/bin/bash' }),
  },
  { additionalProperties: false },
);

export const RescueSpec = T.Object(
  {
    user: str('userName', 'Admin user created in the rescue environment.', { default: 'admin' }),
    sshKeys: T.Array(SshKey, { minItems: 1 }),
  },
  { additionalProperties: false, description: 'Access to a node booted in the rescue profile.' },
);

const deadline = (description: string) => T.Optional(T.Number({ description, minimum: 0.25, maximum: 1440 }));

export const PhoneHomeSpec = T.Object(
  {
    path: str('absPath', 'URL path on node0 the installer reports to.', { default: '/portacluster/report' }),
    afterInstall: T.Union([T.Literal('poweroff'), T.Literal('reboot'), T.Literal('kexec')], {
      description:
        "What the installer does once node0 answered `done`: `reboot` (firmware, PXE, then the OS), `poweroff`, or `kexec`: start the installed OS's kernel at once (no firmware POST, no second PXE round; the built-in environment only). kexec happens only when node0's answer says it switched the node's link to the OS, so the next real reboot boots the OS the normal way; otherwise the node reboots.",
      default: 'reboot',
    }),
    watcherPort: T.Integer({ description: 'Loopback port of `portacluster watch`; nginx proxies phoneHome.path to it.', default: 8077, minimum: 1, maximum: 65535 }),
    timeoutMinutes: T.Integer({ description: 'Deadline of every install phase phoneHome.deadlines does not name: a node still in that phase this long after it began missed its deadline.', default: 30, minimum: 1 }),
    deadlines: T.Optional(
      T.Object(
        {
          requested: deadline('Minutes from the switch (reimage/rescue/diskless) to the first report of the node.'),
          start: deadline('Minutes a node may spend in the start phase (identifying itself).'),
          disk: deadline('Minutes a node may spend in the disk phase (choosing its target disk).'),
          partition: deadline('Minutes a node may spend in the partition phase.'),
          download: deadline('Minutes a node may spend in the download phase without its download moving (each progress report that moves restarts the clock).'),
          extract: deadline('Minutes a node may spend in the extract phase without its image stream moving (download and unpack run together here; each progress report that moves restarts the clock).'),
          configure: deadline('Minutes a node may spend in the configure phase.'),
        },
        { additionalProperties: false, description: 'Per-phase deadlines in minutes (fractions allowed); a phase not named here gets timeoutMinutes. On a miss the watcher power-cycles the node into the installer again (phoneHome.retries), then parks it (phoneHome.park).' },
      ),
    ),
    retries: T.Integer({ description: 'How many times the watcher power-cycles a node that missed a deadline back into the installer (same run) before it parks it.', default: 2, minimum: 0, maximum: 10 }),
    park: T.Union([T.Literal('off'), T.Literal('rescue')], { description: 'What happens to a node whose retries ran out: off = powered off; rescue = linked to the rescue profile and power-cycled into it. Either way it is marked failed.', default: 'off' }),
  },
  { additionalProperties: false },
);

export const InstallerEnvSpec = T.Union(
  [
    T.Object(
      {
        type: T.Literal('builtin'),
        mirror: T.Optional(str('mirror', 'Debian archive URL the environment is bootstrapped from (default: mmdebstrap\'s own).')),
        suite: T.Optional(str('release', `Debian suite of the environment (default ${PLANNED_DEFAULTS.installerSuite}).`)),
      },
      { additionalProperties: false },
    ),
    T.Object(
      {
        type: T.Literal('systemrescue'),
        url: T.Optional(str('downloadUrl', 'Where to download the ISO.')),
        path: T.Optional(str('localPath', 'A local ISO file.')),
        sha256: T.Optional(str('sha256', 'sha256 of the ISO.')),
        sha512: T.Optional(str('sha512', 'sha512 of the ISO.')),
        keymap: T.Optional(str('keymap', `Keyboard map for setkmap= (default ${PLANNED_DEFAULTS.keymap}).`)),
      },
      { additionalProperties: false },
    ),
  ],
  { description: 'What nodes boot to install or rescue: the built-in environment or a SystemRescue ISO.' },
);

export const BootServerSpec = T.Object(
  {
    name: str('hostLabel', 'Host name of the boot server.'),
    backboneIp: str('ipv4', "Its address on node0's cluster network (the backbone, admin.ip's subnet): node0 reaches it there, and it fetches images and passes reports on from there."),
    interface: str('iface', "The interface facing its rack: its dnsmasq and nginx bind to it and to nothing else."),
    ip: str('ipv4', "Its address on its rack's network: what its nodes boot and fetch from."),
    prefix: T.Integer({ description: "Prefix length of its rack's subnet.", minimum: 8, maximum: 30, default: 24 }),
    rangeStart: str('ipv4', "First address of the dynamic range it hands out on its rack's subnet."),
    rangeEnd: str('ipv4', 'Last address of that range.'),
    leaseTime: T.Optional(str('leaseTime', `dnsmasq lease time on its rack; default ${PLANNED_DEFAULTS.leaseTime}.`)),
    nodes: T.Array(str('hostLabel', 'The name of a node in nodes[].'), { minItems: 1, description: 'The nodes behind it (by name): it is their DHCP, TFTP and HTTP server; every node is behind one server at most, the rest are node0\'s own.' }),
    ssh: T.Optional(str('sshTarget', 'Where deploy reaches it; default root@<backboneIp>.')),
  },
  { additionalProperties: false, description: 'A boot server: serves the nodes of one rack from its own copy of the tree and a cache of node0\'s images (docs/scale.md).' },
);

export const ClusterSpecSchema = T.Object(
  {
    $schema: T.Optional(str('schemaRef', 'The JSON Schema editors check this file against.')),
    cluster: str('clusterName', 'Cluster name.', { default: 'portacluster' }),
    domain: str('domain', 'DNS domain of the cluster.'),
    admin: AdminSpec,
    dhcp: DhcpSpec,
    appliances: T.Array(ApplianceSpec, { default: [] }),
    nodes: T.Array(NodeSpec, { minItems: 1 }),
    bootServers: T.Optional(T.Array(BootServerSpec, { description: 'Boot servers between node0 and the racks; none: node0 serves every node itself.' })),
    power: T.Optional(T.Union([PowerSpec], { description: "The nodes' power when a node says none: usually a BMC whose host has {name} in it." })),
    boot: BootSpec,
    image: ImageSpecSchema,
    disk: DiskSpec,
    users: T.Array(UserSpec, { default: [] }),
    rescue: RescueSpec,
    phoneHome: PhoneHomeSpec,
    installerEnv: InstallerEnvSpec,
  },
  { additionalProperties: false, title: 'portacluster cluster spec' },
);

export type ClusterSpec = Static<typeof ClusterSpecSchema>;
export type NodeSpecT = Static<typeof NodeSpec>;
export type PartitionSpecT = Static<typeof PartitionSpec>;
export type DiskTargetT = Static<typeof DiskTarget>;
export type InstallerEnvSpecT = Static<typeof InstallerEnvSpec>;
export type PowerSpecT = Static<typeof PowerSpec>;
export type BootServerSpecT = Static<typeof BootServerSpec>;

/** What a user writes: every field that has a default may be left out. */
export type ClusterSpecInput = DeepPartialDefaults<ClusterSpec>;
// Kept simple on purpose: defaults are filled by ajv, so the input type is the spec with optional leaves.
type DeepPartialDefaults<X> = X extends (infer U)[]
  ? DeepPartialDefaults<U>[]
  : X extends object
    ? { [K in keyof X]?: DeepPartialDefaults<X[K]> }
    : X;
