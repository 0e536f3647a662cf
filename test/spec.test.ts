import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { loadSpec } from '../build/spec/load.ts';
import { validateSpec } from '../build/spec/validate.ts';
import { planCluster } from '../build/plan/plan.ts';
import { SCHEMA_PATH, schemaJson } from '../build/spec/emit-schema.ts';
import { baseSpec, KEY, problems } from './fixtures/specs.ts';

describe('valid specs', () => {
  it('the base fixture validates and normalizes MACs, sizes and defaults', () => {
    const spec = validateSpec(baseSpec());
    expect(spec.nodes[1]!.mac).toBe('c0:3f:d5:60:cd:8b');
    expect(spec.disk.partitions[0]).toEqual({ sizeBytes: 536870912, type: 'esp', filesystem: 'vfat', mountpoint: '/boot/efi', label: 'ESP' });
    expect(spec.disk.partitions[1]!.label).toBe('root');
    expect(spec.disk.minBytes).toBe(8 * 1024 ** 3);
    expect(spec.phoneHome).toEqual({ path: '/portacluster/report', afterInstall: 'reboot', watcherPort: 8077, timeoutMinutes: 30, retries: 2, park: 'off' });
    const plan = planCluster(spec);
    expect(plan.nodes.map((n) => [n.pxeFile, n.profile])).toEqual([
      ['01-c0-3f-d5-60-e5-a1', 'installer'],
      ['01-c0-3f-d5-60-cd-8b', 'arch-linux'],
    ]);
    expect(plan.admin.httpBase).toBe('http://192.168.10.10');
    expect(plan.os.rootLabel).toBe('root');
    expect(plan.image.installMode).toBe('tarball');
  });

  it('image mode accepts an ext4 root beside the ESP and swap', () => {
    const s = baseSpec();
    s.image.installMode = 'image';
    s.disk.partitions.splice(1, 0, { size: '1G', type: 'swap' });
    expect(planCluster(validateSpec(s)).image.installMode).toBe('image');
  });

  it.each(['examples/portacluster.config.ts', 'examples/arch.config.ts'])('%s loads', async (file) => {
    const { spec } = await loadSpec(file);
    const plan = planCluster(spec);
    expect(plan.nodes.map((n) => n.mac)).toEqual(['c0:3f:d5:60:e5:a1', 'c0:3f:d5:60:cd:8b', 'c0:3f:d5:60:e5:b9', 'c0:3f:d5:60:e4:ac', 'c0:3f:d5:60:6f:18', 'c0:3f:d5:60:d0:9e']);
    expect(plan.appliances.map((a) => a.name)).toEqual(['switch', 'pdu']);
    expect(plan.dhcp).toEqual({ mode: 'server', rangeStart: '192.168.10.130', rangeEnd: '192.168.10.180', leaseTime: '1h' });
    expect(plan.admin).toMatchObject({ ip: '192.168.10.10', interface: 'eno1' });
  });

  it('boot.diskless adds the diskless profile, which nodes may boot', () => {
    const spec = baseSpec();
    expect(planCluster(validateSpec(spec)).profiles.all).toEqual(['installer', 'rescue', 'arch-linux']);
    spec.boot.diskless = true;
    spec.nodes[1].profile = 'diskless';
    const plan = planCluster(validateSpec(spec));
    expect(plan.profiles).toMatchObject({ all: ['installer', 'rescue', 'arch-linux', 'diskless'], diskless: 'diskless' });
    expect(plan.diskless).toEqual({ modules: 'arch-linux-diskless-modules' });
    expect(plan.nodes[1]!.profile).toBe('diskless');
  });

  it('the same spec hashes the same regardless of key order', () => {
    const a = baseSpec();
    const reversed = (v: unknown): unknown =>
      Array.isArray(v) ? v.map(reversed) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, reversed(x)])) : v;
    const b = reversed(a);
    expect(planCluster(validateSpec(a)).specHash).toBe(planCluster(validateSpec(b)).specHash);
  });

  it('schema/portacluster.schema.json is current (npm run schema)', async () => {
    expect(await readFile(SCHEMA_PATH, 'utf8')).toBe(schemaJson());
  });
});

// Each case: a mutation and the exact lines it must produce.
const INVALID: [string, (s: Record<string, any>) => void, string[]][] = [
  ['short MAC', (s) => (s.nodes[0].mac = 'c0:3f:d5'), ['nodes[0].mac: not a MAC address (got "c0:3f:d5") | hint: six hex pairs, e.g. c0:3f:d5:60:e5:a1']],
  ['mixed MAC separators', (s) => (s.appliances[0].mac = 'c4:04-15:90:bf:b4'), ['appliances[0].mac: not a MAC address (got "c4:04-15:90:bf:b4") | hint: six hex pairs, e.g. c0:3f:d5:60:e5:a1']],
  ['duplicate MAC in another spelling', (s) => (s.nodes[1].mac = 'C0:3F:D5:60:E5:A1'), ['nodes[1].mac: duplicate mac "c0:3f:d5:60:e5:a1", also used by nodes[0]']],
  ['duplicate host name', (s) => (s.nodes[1].name = 'switch'), ['nodes[1].name: duplicate name "switch", also used by appliances[0]']],
  ['duplicate IP with the admin node', (s) => (s.nodes[0].ip = '192.168.10.10'), ['nodes[0].ip: duplicate ip "192.168.10.10", also used by admin']],
  ['host name with an underscore', (s) => (s.nodes[0].name = 'node_1'), ['nodes[0].name: not an RFC 1123 host name (got "node_1") | hint: lowercase letters, digits and inner hyphens, at most 63 characters']],
  ['fixed IP outside the subnet', (s) => (s.nodes[0].ip = '10.0.0.5'), ['nodes[0].ip: 10.0.0.5 is outside the cluster subnet 192.168.10.0/24']],
  ['fixed IP in the dynamic range', (s) => (s.nodes[0].ip = '192.168.10.150'), ['nodes[0].ip: 192.168.10.150 is inside the dynamic range 192.168.10.130–192.168.10.180 | hint: fixed addresses must lie outside dhcp.rangeStart…rangeEnd']],
  ['not an IP', (s) => (s.nodes[0].ip = '192.168.10.300'), ['nodes[0].ip: not an IPv4 address (got "192.168.10.300") | hint: a dotted quad, e.g. 192.168.10.11']],
  ['range reversed', (s) => (s.dhcp.rangeEnd = '192.168.10.120'), ['dhcp.rangeEnd: range end 192.168.10.120 is before its start 192.168.10.130']],
  ['no root partition', (s) => (s.disk.partitions[1].mountpoint = '/srv'), ['disk.partitions: needs exactly one root partition (mountpoint "/"), found 0']],
  ['two roots', (s) => s.disk.partitions.splice(1, 0, { size: '2G', type: 'linux', mountpoint: '/', label: 'root2' }), ['disk.partitions: needs exactly one root partition (mountpoint "/"), found 2', 'disk.partitions[2].mountpoint: / is also the mountpoint of disk.partitions[1]']],
  ['rest not last', (s) => s.disk.partitions.push({ size: '4G', type: 'swap' }), ['disk.partitions[1].size: "rest" must be the last partition']],
  ['two rests', (s) => s.disk.partitions.push({ size: 'rest', type: 'linux', mountpoint: '/srv' }), ['disk.partitions[2].size: only one partition may take the "rest" of the disk']],
  ['UEFI node without ESP', (s) => s.disk.partitions.shift(), ['disk.partitions: UEFI nodes (node2) need an EFI system partition | hint: add { size: "512M", type: "esp", mountpoint: "/boot/efi" }']],
  ['BIOS node on GPT booting from disk without bios_grub', (s) => (s.boot.os.bootFrom = 'disk'), ['disk.partitions: BIOS nodes (node1) booting from a GPT disk need a bios_grub partition | hint: add { size: "1M", type: "bios_grub" } first']],
  ['layout larger than the smallest disk', (s) => (s.disk.partitions[0].size = '9G'), ['disk.partitions: the layout needs 10G but the smallest allowed disk (disk.minSize) is 8G | hint: the "rest" partition is given at least 1G']],
  ['bad size', (s) => (s.disk.partitions[0].size = '12 parsecs'), ['disk.partitions[0].size: not a size (got "12 parsecs") | hint: bytes as an integer, or a number with K, M, G or T (binary units), e.g. 512M']],
  ['missing field', (s) => delete s.admin.interface, ['admin.interface: is required']],
  ['misspelt field', (s) => ((s.dhcp.leasetime = '1h'), delete s.dhcp.leaseTime), ['dhcp.leasetime: unknown field | hint: did you mean "leaseTime"?']],
  ['wrong firmware', (s) => (s.nodes[0].firmware = 'efi'), ['nodes[0].firmware: must be one of "bios" | "uefi" (got "efi")']],
  ['unknown profile', (s) => (s.nodes[0].profile = 'ubuntu'), ['nodes[0].profile: unknown profile "ubuntu" | hint: one of installer, rescue, arch-linux, os']],
  ['httpBase with a host name', (s) => (s.admin.httpBase = 'http://node0'), ['admin.httpBase: uses the host name "node0" | hint: nodes have no DNS when they fetch: use the admin IP']],
  ['broken ssh key', (s) => (s.users[0].sshKeys = ['ssh-ed25519 AAAA$(reboot)']), ['users[0].sshKeys[0]: not an OpenSSH public key line (got "ssh-ed25519 AAAA$(reboot)") | hint: one line: type, base64 blob, optional comment on the same line (e.g. the contents of ~/.ssh/id_ed25519.pub)']],
  ['ssh key with a newline', (s) => (s.rescue.sshKeys = [KEY + '\nssh-rsa AAAA evil']), ['rescue.sshKeys[0]: not an OpenSSH public key line (got "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAb2Tuna16fV66PsT0Ns…) | hint: one line: type, base64 blob, optional comment on the same line (e.g. the contents of ~/.ssh/id_ed25519.pub)']],
  ['package with shell syntax', (s) => (s.image.packages = ['vim; rm -rf /']), ['image.packages[0]: not a package name (got "vim; rm -rf /") | hint: lowercase letters, digits and @._+-, e.g. openssh-server']],
  ['disk target with a space', (s) => (s.disk.target = { byId: 'ata-disk $(x)' }), ['disk.target.byId: not a /dev/disk name (got "ata-disk $(x)") | hint: the name only, as listed by ls /dev/disk/by-id']],
  ['disk target of no known kind', (s) => (s.disk.target = { byUuid: 'x' }), ['disk.target: must be one of { byId } | { byPath } | { onlyNonRemovable } (got {"byUuid":"x"})']],
  ['SystemRescue without a checksum', (s) => (s.installerEnv = { type: 'systemrescue', path: '/tmp/x.iso' }), ['installerEnv: needs sha256 or sha512 of the ISO | hint: nodes never boot unverified bytes; copy the digest from the download page']],
  ['bios_grub on msdos', (s) => ((s.disk.table = 'msdos'), s.disk.partitions.unshift({ size: '1M', type: 'bios_grub' })), ['disk.partitions[0].type: bios_grub partitions exist only on GPT | hint: use table: "gpt" or drop the partition']],
  ['interface name with a newline', (s) => (s.admin.interface = 'eno1\ndhcp-range=0.0.0.0'), ['admin.interface: not an interface name (got "eno1\\ndhcp-range=0.0.0.0") | hint: the name ip link shows, e.g. eno1 (at most 15 characters)']],
  ['kernel arg with a space', (s) => (s.boot.os.kernelArgs = ['quiet splash']), ['boot.os.kernelArgs[0]: not a single kernel command-line word (got "quiet splash") | hint: e.g. quiet or console=ttyS1,115200: no spaces, quotes or shell characters']],
  ['image mode with an xfs root', (s) => ((s.image.installMode = 'image'), (s.disk.partitions[1].filesystem = 'xfs')), ['disk.partitions[1].filesystem: image.installMode "image" writes an ext4 image onto the root partition (got "xfs") | hint: use filesystem "ext4", or image.installMode "tarball"']],
  ['image mode with a partition mounted inside the root', (s) => ((s.image.installMode = 'image'), s.disk.partitions.splice(1, 0, { size: '2G', type: 'linux', mountpoint: '/srv' })), ['disk.partitions[1].mountpoint: image.installMode "image" allows no mountpoint but / and the ESP\'s: /srv would hide the image\'s files there | hint: drop the mountpoint, or use image.installMode "tarball"']],
  ['unknown install mode', (s) => (s.image.installMode = 'squashfs'), ['image.installMode: must be one of "tarball" | "image" (got "squashfs")']],
  ['diskless with SystemRescue', (s) => ((s.boot.diskless = true), (s.installerEnv = { type: 'systemrescue', path: '/tmp/x.iso', sha256: 'a'.repeat(64) })), ['boot.diskless: needs installerEnv.type "builtin" | hint: a diskless node boots the built-in environment\'s initramfs with the golden kernel to fetch and switch to its root; SystemRescue cannot']],
  ['diskless profile without boot.diskless', (s) => (s.nodes[0].profile = 'diskless'), ['nodes[0].profile: the diskless profile is not built | hint: set boot.diskless: true']],
  ['OS profile named diskless', (s) => ((s.boot.diskless = true), (s.boot.os.name = 'diskless')), ['boot.os.name: cannot be used as the OS profile name (got "diskless") | hint: a file name other than installer, rescue, diskless, discover, default']],
  // The spec is untrusted input: none of these may reach a config line, an argv option or a path outside dist/.
  ['builtin environment mirror that is an mmdebstrap option', (s) => (s.installerEnv = { type: 'builtin', mirror: '--setup-hook=touch /tmp/x' }), ['installerEnv.mirror: not an http(s):// or file:// URL (got "--setup-hook=touch /tmp/x") | hint: e.g. http://deb.debian.org/debian, https://geo.mirror.pkgbuild.com/$repo/os/$arch or file:///srv/repo/$repo/os/$arch']],
  ['builtin environment suite that is an option', (s) => (s.installerEnv = { type: 'builtin', suite: '--customize-hook=id' }), ['installerEnv.suite: not a release name (got "--customize-hook=id") | hint: a Debian suite such as bookworm, or a label such as rolling']],
  ['cluster name with a newline', (s) => (s.cluster = 'lab\ndhcp-script=/tmp/pwn.sh\n#'), ['cluster: not a cluster name (got "lab\\ndhcp-script=/tmp/pwn.sh\\n#") | hint: letters, digits, ".", "_" and "-", starting with a letter or digit']],
  ['image name that climbs out of the output directory', (s) => (s.image.name = '../../escape'), ['image.name: not an RFC 1123 host name (got "../../escape") | hint: lowercase letters, digits and inner hyphens, at most 63 characters']],
  ['arch repo that opens a pacman.conf section', (s) => (s.image.repos = ['core]\nSigLevel = Never\n[extra']), ['image.repos[0]: not an Arch repository name (got "core]\\nSigLevel = Never\\n[extra") | hint: e.g. core or extra: lowercase letters, digits, ".", "_" and "-"']],
  ['root as a user', (s) => (s.users[0].name = 'root'), ['users[0].name: root is not a user the installer creates | hint: root exists on every node; add your own login name with sudo: true']],
  ['a value far too long', (s) => (s.image.packages = ['a'.repeat(5000)]), [`image.packages[0]: not a package name (got "${'a'.repeat(56)}…) | hint: lowercase letters, digits and @._+-, e.g. openssh-server`]],
  ['arch image without a mirror', (s) => delete s.image.mirror, ['image.mirror: is required for arch images | hint: a Server= URL such as https://geo.mirror.pkgbuild.com/$repo/os/$arch, or file:///path/to/repo']],
];

describe('invalid specs: every problem, with its exact path', () => {
  it(`has at least 20 cases (${INVALID.length})`, () => expect(INVALID.length).toBeGreaterThanOrEqual(20));
  it.each(INVALID)('%s', (_name, mutate, expected) => {
    expect(problems(mutate)).toEqual(expected);
  });

  it('reports several problems at once', () => {
    const found = problems((s) => {
      s.nodes[0].mac = 'zz';
      s.nodes[1].mac = '00:11';
    });
    expect(found).toHaveLength(2);
  });

  it('reports shape errors together with value and rule problems', () => {
    const found = problems((s) => {
      s.nodes[0].firmware = 'efi';
      s.nodes[1].mac = 'c0:3f:d5';
      s.nodes[1].name = s.nodes[0].name;
    });
    expect(found.map((l) => l.split(':')[0])).toEqual(['nodes[0].firmware', 'nodes[1].mac', 'nodes[1].name']);
  });

  it('a shape error that stops normalizing a node still leaves every other problem reported', () => {
    const found = problems((s) => {
      s.nodes[0].mca = s.nodes[0].mac;
      delete s.nodes[0].mac;
      s.disk.partitions[1].size = '12 parsecs';
      s.nodes[1].ip = '192.168.10.11';
    });
    expect(found).toEqual([
      'nodes[0].mac: is required',
      'nodes[0].mca: unknown field | hint: did you mean "mac"?',
      'disk.partitions[1].size: not a size (got "12 parsecs") | hint: bytes as an integer, or a number with K, M, G or T (binary units), e.g. 512M',
      'nodes[1].ip: duplicate ip "192.168.10.11", also used by nodes[0]',
    ]);
  });

  it('formats the error with the file name and a count', () => {
    const spec = baseSpec();
    spec.nodes[0].mac = 'c0:3f:d5';
    expect(() => validateSpec(spec, 'cluster.json')).toThrow(/^cluster\.json: 1 problem in the spec\n  nodes\[0\]\.mac: not a MAC address \(got "c0:3f:d5"\)/);
  });
});
