/**
 * Rules over a normalized spec: what one field's form cannot say (duplicates, subnets, partitions that fit,
 * fields that need each other). The forms themselves are the schema's (build/spec/patterns.ts). Each rule
 * pushes every problem it finds; none stops at the first.
 */
import type { SpecIssue } from '../lib/errors.ts';
import type { NormalizedSpec } from './normalized.ts';
import { bootServersRule } from './rules-boot-servers.ts';
import { formatIpv4, formatSize, parseIpv4, subnetOf } from './values.ts';
import { STATUS_PATH } from '../layout.ts';
import { POWER_RULES } from './power-rules.ts';

type Rule = (spec: NormalizedSpec, issues: SpecIssue[]) => void;

const RESERVED_PROFILES = ['installer', 'rescue', 'diskless', 'discover', 'default'];

const uniqueHosts: Rule = (s, out) => {
  const hosts = [
    { path: 'admin', name: s.admin.hostname, mac: undefined as string | undefined, ip: s.admin.ip },
    ...s.appliances.map((a, i) => ({ path: `appliances[${i}]`, ...a })),
    ...s.nodes.map((n, i) => ({ path: `nodes[${i}]`, ...n })),
  ];
  for (const key of ['name', 'mac', 'ip'] as const) {
    const first = new Map<string, string>();
    for (const h of hosts) {
      const v = key === 'name' ? h.name : h[key];
      if (v === undefined) continue;
      const prev = first.get(v);
      if (prev) out.push({ path: `${h.path}.${key === 'name' && h.path === 'admin' ? 'hostname' : key}`, message: `duplicate ${key} ${JSON.stringify(v)}, also used by ${prev}` });
      else first.set(v, h.path);
    }
  }
};

const addresses: Rule = (s, out) => {
  const admin = parseIpv4(s.admin.ip);
  const ipIssue = (path: string, v: string) => out.push({ path, message: `not an IPv4 address (got ${JSON.stringify(v)})` });
  if (admin === null) return ipIssue('admin.ip', s.admin.ip);
  const net = subnetOf(admin, s.admin.prefix);
  const cidr = `${formatIpv4(net.network)}/${s.admin.prefix}`;
  const inside = (n: number) => n > net.network && n < net.broadcast;
  // Proxy mode has no range of its own (dhcpMode reports one that was given); nothing is inside it.
  const start = s.dhcp.rangeStart === undefined || s.dhcp.mode === 'proxy' ? null : parseIpv4(s.dhcp.rangeStart);
  const end = s.dhcp.rangeEnd === undefined || s.dhcp.mode === 'proxy' ? null : parseIpv4(s.dhcp.rangeEnd);
  if (start === null && s.dhcp.mode !== 'proxy' && s.dhcp.rangeStart !== undefined) ipIssue('dhcp.rangeStart', s.dhcp.rangeStart);
  if (end === null && s.dhcp.mode !== 'proxy' && s.dhcp.rangeEnd !== undefined) ipIssue('dhcp.rangeEnd', s.dhcp.rangeEnd);
  if (start !== null && !inside(start)) out.push({ path: 'dhcp.rangeStart', message: `${s.dhcp.rangeStart} is outside the cluster subnet ${cidr}` });
  if (end !== null && !inside(end)) out.push({ path: 'dhcp.rangeEnd', message: `${s.dhcp.rangeEnd} is outside the cluster subnet ${cidr}` });
  if (start !== null && end !== null && start > end) out.push({ path: 'dhcp.rangeEnd', message: `range end ${s.dhcp.rangeEnd} is before its start ${s.dhcp.rangeStart}` });
  const inRange = (n: number) => start !== null && end !== null && n >= start && n <= end;
  if (inRange(admin)) out.push({ path: 'admin.ip', message: `${s.admin.ip} is inside the dynamic range ${s.dhcp.rangeStart}–${s.dhcp.rangeEnd}` });
  // A node behind a boot server has its address on that server's rack subnet (bootServersRule checks it).
  const served = new Set((s.bootServers ?? []).flatMap((b) => b.nodes));
  const fixed = [
    ...s.appliances.map((a, i) => [`appliances[${i}].ip`, a.ip] as const),
    ...s.nodes.map((n, i) => [`nodes[${i}].ip`, served.has(n.name) ? undefined : n.ip] as const),
  ];
  for (const [path, ip] of fixed) {
    if (ip === undefined) continue;
    const n = parseIpv4(ip);
    if (n === null) ipIssue(path, ip);
    else if (!inside(n)) out.push({ path, message: `${ip} is outside the cluster subnet ${cidr}` });
    else if (inRange(n))
      out.push({ path, message: `${ip} is inside the dynamic range ${s.dhcp.rangeStart}–${s.dhcp.rangeEnd}`, hint: 'fixed addresses must lie outside dhcp.rangeStart…rangeEnd' });
  }
  if (s.admin.httpBase !== undefined) {
    // The schema fixed the form http://host[:port]; only whether host is an address is left.
    const host = s.admin.httpBase.slice('http://'.length).split(':')[0]!;
    if (parseIpv4(host) === null) out.push({ path: 'admin.httpBase', message: `uses the host name ${JSON.stringify(host)}`, hint: 'nodes have no DNS when they fetch: use the admin IP' });
  }
};

/**
 * What stops applying in proxy mode is an error, not a warning: dnsmasq.conf would silently leave it out
 * while the spec still claims it (a fixed IP the router never hands out would also reach `{ip}` in reboot
 * commands and the installer's network set-up), and the validator has one outcome: what the spec says is
 * what node0 does.
 */
const dhcpMode: Rule = (s, out) => {
  const d = s.dhcp;
  if (d.mode !== 'proxy') {
    for (const field of ['rangeStart', 'rangeEnd'] as const)
      if (d[field] === undefined) out.push({ path: `dhcp.${field}`, message: 'is required with dhcp.mode "server"', hint: 'the dynamic range node0 hands out; or dhcp.mode "proxy" when another DHCP server (a router) owns the network' });
    return;
  }
  const router = 'in dhcp.mode "proxy" the network\'s own DHCP server (the router) hands out addresses';
  for (const field of ['rangeStart', 'rangeEnd', 'leaseTime'] as const)
    if (d[field] !== undefined) out.push({ path: `dhcp.${field}`, message: `does not apply: ${router}`, hint: `drop dhcp.${field}, or use dhcp.mode "server"` });
  s.nodes.forEach((n, i) => {
    if (n.ip !== undefined) out.push({ path: `nodes[${i}].ip`, message: `does not apply: ${router}`, hint: 'reserve the address for this MAC on the router, and drop ip here' });
    // `--reboot` would otherwise run the command with an empty word where the address was meant to be.
    n.reboot?.forEach((arg, j) => {
      if (arg.includes('{ip}')) out.push({ path: `nodes[${i}].reboot[${j}]`, message: 'uses {ip}, which node0 does not know in dhcp.mode "proxy"', hint: 'use {name} or {mac}, or write the address the router reserves' });
    });
  });
  s.appliances.forEach((_a, i) =>
    out.push({ path: `appliances[${i}]`, message: `portacluster only gives appliances DHCP, and ${router}`, hint: 'drop the appliance (configure it on the router), or use dhcp.mode "server"' }),
  );
};

/** HTTP-boot firmware is handed iPXE (the one loader here that runs from an HTTP boot), which then reads iPXE scripts. */
const httpBoot: Rule = (s, out) => {
  if (!s.boot.httpBoot) return;
  if (s.boot.loader !== 'ipxe') out.push({ path: 'boot.httpBoot', message: 'needs boot.loader "ipxe"', hint: 'UEFI HTTP boot loads iPXE (snponly.efi) by URL; pxelinux is loaded over TFTP only' });
  s.nodes.forEach((n, i) => {
    if (n.loader === 'pxelinux') out.push({ path: `nodes[${i}].loader`, message: 'pxelinux cannot be used with boot.httpBoot', hint: 'drop the per-node loader (iPXE), or turn boot.httpBoot off' });
  });
};

const profiles: Rule = (s, out) => {
  const os = s.boot.os.name;
  if (RESERVED_PROFILES.includes(os))
    out.push({ path: 'boot.os.name', message: `cannot be used as the OS profile name (got ${JSON.stringify(os)})`, hint: `a file name other than ${RESERVED_PROFILES.join(', ')}` });
  const known = ['installer', 'rescue', os, 'os', ...(s.boot.diskless ? ['diskless'] : [])];
  const check = (path: string, p: string | undefined) => {
    if (p === 'diskless' && !s.boot.diskless) out.push({ path, message: 'the diskless profile is not built', hint: 'set boot.diskless: true' });
    else if (p === 'discover') out.push({ path, message: 'discover is not a profile a node is linked to', hint: 'with boot.discover: true every MAC the spec does not know boots it; a node in the spec installs, runs or rescues' });
    else if (p !== undefined && !known.includes(p)) out.push({ path, message: `unknown profile ${JSON.stringify(p)}`, hint: `one of ${known.join(', ')}` });
  };
  if (s.boot.diskless && s.installerEnv.type !== 'builtin')
    out.push({
      path: 'boot.diskless',
      message: 'needs installerEnv.type "builtin"',
      hint: "a diskless node boots the built-in environment's initramfs with the golden kernel to fetch and switch to its root; SystemRescue cannot",
    });
  if (s.boot.discover && s.installerEnv.type !== 'builtin')
    out.push({ path: 'boot.discover', message: 'needs installerEnv.type "builtin"', hint: "discovery runs the built-in environment's inventory script; SystemRescue has none" });
  if (s.phoneHome.afterInstall === 'kexec' && s.installerEnv.type !== 'builtin')
    out.push({ path: 'phoneHome.afterInstall', message: 'kexec needs installerEnv.type "builtin"', hint: "the built-in environment carries kexec-tools; with SystemRescue use 'reboot'" });
  check('boot.default', s.boot.default);
  s.nodes.forEach((n, i) => check(`nodes[${i}].profile`, n.profile));
};

const partitions: Rule = (s, out) => {
  const parts = s.disk.partitions;
  const roots = parts.map((p, i) => [p, i] as const).filter(([p]) => p.mountpoint === '/');
  if (roots.length !== 1) out.push({ path: 'disk.partitions', message: `needs exactly one root partition (mountpoint "/"), found ${roots.length}` });
  const rest = parts.map((p, i) => [p, i] as const).filter(([p]) => p.sizeBytes === null);
  if (rest.length > 1) out.push({ path: `disk.partitions[${rest[1]![1]}].size`, message: 'only one partition may take the "rest" of the disk' });
  if (rest.length === 1 && rest[0]![1] !== parts.length - 1) out.push({ path: `disk.partitions[${rest[0]![1]}].size`, message: '"rest" must be the last partition' });
  const mounts = new Map<string, number>();
  const labels = new Map<string, number>();
  parts.forEach((p, i) => {
    const at = `disk.partitions[${i}]`;
    if (p.mountpoint !== null) {
      if (mounts.has(p.mountpoint)) out.push({ path: `${at}.mountpoint`, message: `${p.mountpoint} is also the mountpoint of disk.partitions[${mounts.get(p.mountpoint)}]` });
      mounts.set(p.mountpoint, i);
    }
    if (p.label !== null) {
      if (labels.has(p.label)) out.push({ path: `${at}.label`, message: `label ${JSON.stringify(p.label)} is also used by disk.partitions[${labels.get(p.label)}]` });
      labels.set(p.label, i);
    }
    const fsFor = { esp: ['vfat'], swap: ['swap'], bios_grub: [null], linux: ['ext4', 'xfs', 'vfat'] }[p.type] as (string | null)[];
    if (!fsFor.includes(p.filesystem)) out.push({ path: `${at}.filesystem`, message: `a ${p.type} partition cannot hold ${p.filesystem ?? 'no filesystem'}` });
    if ((p.type === 'swap' || p.type === 'bios_grub') && p.mountpoint !== null) out.push({ path: `${at}.mountpoint`, message: `a ${p.type} partition is not mounted` });
    if (p.mountpoint === '/' && p.type !== 'linux') out.push({ path: `${at}.type`, message: 'the root partition must be of type linux' });
    if (p.filesystem && p.filesystem !== 'swap' && p.filesystem !== 'vfat' && p.mountpoint === null)
      out.push({ path: `${at}.mountpoint`, message: `a ${p.filesystem} filesystem needs a mountpoint` });
  });
  if (roots.length === 1 && roots[0]![0].label === null) out.push({ path: `disk.partitions[${roots[0]![1]}].label`, message: 'the root partition needs a label (nodes boot with root=LABEL=…)' });
  if (s.disk.table === 'msdos') {
    if (parts.length > 4) out.push({ path: 'disk.partitions', message: `an msdos table holds at most 4 primary partitions, found ${parts.length}` });
    parts.forEach((p, i) => {
      if (p.type === 'bios_grub') out.push({ path: `disk.partitions[${i}].type`, message: 'bios_grub partitions exist only on GPT', hint: 'use table: "gpt" or drop the partition' });
    });
  }
  const uefi = s.nodes.map((n, i) => [n, i] as const).filter(([n]) => n.firmware === 'uefi');
  if (uefi.length && !parts.some((p) => p.type === 'esp'))
    out.push({ path: 'disk.partitions', message: `UEFI nodes (${uefi.map(([n]) => n.name).join(', ')}) need an EFI system partition`, hint: 'add { size: "512M", type: "esp", mountpoint: "/boot/efi" }' });
  const bios = s.nodes.filter((n) => n.firmware === 'bios');
  if (bios.length && s.disk.table === 'gpt' && s.boot.os.bootFrom === 'disk' && !parts.some((p) => p.type === 'bios_grub'))
    out.push({ path: 'disk.partitions', message: `BIOS nodes (${bios.map((n) => n.name).join(', ')}) booting from a GPT disk need a bios_grub partition`, hint: 'add { size: "1M", type: "bios_grub" } first' });
  const esp = parts.findIndex((p) => p.type === 'esp');
  if (esp >= 0 && s.boot.os.bootFrom === 'disk' && parts[esp]!.mountpoint !== '/boot/efi')
    out.push({ path: `disk.partitions[${esp}].mountpoint`, message: 'the ESP must be mounted at /boot/efi when nodes boot from disk' });
};

const ALIGN = 1024 ** 2;
const MIN_REST = 1024 ** 3;
const fitsDisk: Rule = (s, out) => {
  // 1 MiB before the first partition and alignment of each, 1 MiB for GPT's backup header.
  const fixed = s.disk.partitions.reduce((sum, p) => sum + Math.ceil((p.sizeBytes ?? 0) / ALIGN) * ALIGN, 0);
  const hasRest = s.disk.partitions.some((p) => p.sizeBytes === null);
  const needed = ALIGN + fixed + ALIGN + (hasRest ? MIN_REST : 0);
  if (needed > s.disk.minBytes)
    out.push({
      path: 'disk.partitions',
      message: `the layout needs ${formatSize(needed)} but the smallest allowed disk (disk.minSize) is ${formatSize(s.disk.minBytes)}`,
      hint: hasRest ? 'the "rest" partition is given at least 1G' : undefined,
    });
};

const accounts: Rule = (s, out) => {
  const names = new Map<string, number>();
  s.users.forEach((u, i) => {
    if (u.name === 'root') out.push({ path: `users[${i}].name`, message: 'root is not a user the installer creates', hint: 'root exists on every node; add your own login name with sudo: true' });
    if (names.has(u.name)) out.push({ path: `users[${i}].name`, message: `duplicate user ${JSON.stringify(u.name)}, also users[${names.get(u.name)}]` });
    names.set(u.name, i);
  });
};

const image: Rule = (s, out) => {
  const mirror = s.image.mirror;
  if (mirror === undefined && s.image.distro === 'arch' && s.image.rootfs === undefined)
    out.push({ path: 'image.mirror', message: 'is required for arch images', hint: 'a Server= URL such as https://geo.mirror.pkgbuild.com/$repo/os/$arch, or file:///path/to/repo' });
  if (s.image.distro === 'debian' && s.image.repos) out.push({ path: 'image.repos', message: 'only applies to arch images' });
  if (s.image.distro === 'arch' && s.image.components) out.push({ path: 'image.components', message: 'only applies to debian images' });
};

// Image mode writes one ext4 filesystem over the root partition: anything mounted inside it would hide
// the image's own files there (the ESP's mountpoint is empty in an image; swap is not mounted).
const installMode: Rule = (s, out) => {
  if (s.image.installMode !== 'image') return;
  s.disk.partitions.forEach((p, i) => {
    const at = `disk.partitions[${i}]`;
    if (p.mountpoint === '/' && p.filesystem !== 'ext4')
      out.push({ path: `${at}.filesystem`, message: `image.installMode "image" writes an ext4 image onto the root partition (got ${JSON.stringify(p.filesystem)})`, hint: 'use filesystem "ext4", or image.installMode "tarball"' });
    if (p.mountpoint !== null && p.mountpoint !== '/' && p.type !== 'esp')
      out.push({ path: `${at}.mountpoint`, message: `image.installMode "image" allows no mountpoint but / and the ESP's: ${p.mountpoint} would hide the image's files there`, hint: 'drop the mountpoint, or use image.installMode "tarball"' });
  });
};

const installerEnv: Rule = (s, out) => {
  const env = s.installerEnv;
  if (env.type !== 'systemrescue') return;
  if ((env.url === undefined) === (env.path === undefined)) out.push({ path: 'installerEnv', message: 'give exactly one of url or path' });
  if (env.sha256 === undefined && env.sha512 === undefined)
    out.push({ path: 'installerEnv', message: 'needs sha256 or sha512 of the ISO', hint: 'nodes never boot unverified bytes; copy the digest from the download page' });
};

// The watcher answers the status page's paths before it parses a report: a report path there would be lost.
const phoneHomePath: Rule = (s, out) => {
  const p = s.phoneHome.path;
  if (p === STATUS_PATH || p.startsWith(`${STATUS_PATH}/`))
    out.push({ path: 'phoneHome.path', message: `${p} is the status page's (${STATUS_PATH})`, hint: 'keep the default /portacluster/report, or any path outside the status page' });
};

export const RULES: Rule[] = [uniqueHosts, addresses, bootServersRule, dhcpMode, httpBoot, profiles, partitions, fitsDisk, accounts, image, installMode, installerEnv, phoneHomePath, ...POWER_RULES];

export function checkRules(spec: NormalizedSpec): SpecIssue[] {
  const issues: SpecIssue[] = [];
  for (const rule of RULES) rule(spec, issues);
  return issues;
}
