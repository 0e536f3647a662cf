// The original portacluster (node0 + switch, pdu and six nodes) as in the original post, with an Arch Linux golden image.
// Build it where an Arch mirror can be reached. To install with SystemRescue as the original did, set
// installerEnv: { type: 'systemrescue', url: '<ISO URL>', sha512: '<its published digest>' }.
import { defineConfig } from 'portacluster';

export default defineConfig({
  cluster: 'portacluster',
  domain: 'pc.datastax.com',
  admin: { hostname: 'node0', interface: 'eno1', ip: '192.168.10.10', prefix: 24 },
  dhcp: { rangeStart: '192.168.10.130', rangeEnd: '192.168.10.180', leaseTime: '1h' },
  appliances: [
    { name: 'switch', mac: 'c4:04:15:90:bf:b4' },
    { name: 'pdu', mac: '00:c0:b7:b6:6a:4c' },
  ],
  nodes: [
    { name: 'node1', mac: 'c0:3f:d5:60:e5:a1', ip: '192.168.10.11', firmware: 'bios' },
    { name: 'node2', mac: 'c0:3f:d5:60:cd:8b', ip: '192.168.10.12', firmware: 'bios' },
    { name: 'node3', mac: 'c0:3f:d5:60:e5:b9', ip: '192.168.10.13', firmware: 'bios' },
    { name: 'node4', mac: 'c0:3f:d5:60:e4:ac', ip: '192.168.10.14', firmware: 'bios' },
    { name: 'node5', mac: 'c0:3f:d5:60:6f:18', ip: '192.168.10.15', firmware: 'bios' },
    { name: 'node6', mac: 'c0:3f:d5:60:d0:9e', ip: '192.168.10.16', firmware: 'uefi' },
  ],
  boot: {
    default: 'installer',
    os: { name: 'arch-linux', bootFrom: 'network', kernelArgs: [], serialConsole: 'ttyS0,115200' },
  },
  image: {
    name: 'arch',
    distro: 'arch',
    release: 'rolling',
    mirror: 'https://geo.mirror.pkgbuild.com/$repo/os/$arch',
    packages: ['base', 'linux', 'linux-firmware', 'openssh', 'sudo', 'jdk-openjdk', 'python'],
  },
  disk: {
    table: 'gpt',
    target: { onlyNonRemovable: true },
    minSize: '16G',
    partitions: [
      { size: '512M', type: 'esp', mountpoint: '/boot/efi' },
      { size: 'rest', type: 'linux', filesystem: 'ext4', mountpoint: '/', label: 'root' },
    ],
  },
  users: [
    {
      name: 'atobey',
      sudo: true,
      sshKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAb2Tuna16fV66PsT0NsZPRb03s/1OKYerzWEjAfz/Cf atobey@node0'],
    },
  ],
  rescue: { user: 'atobey', sshKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAb2Tuna16fV66PsT0NsZPRb03s/1OKYerzWEjAfz/Cf atobey@node0'] },
  phoneHome: { path: '/portacluster/report', afterInstall: 'reboot' },
  installerEnv: { type: 'builtin' },
});
