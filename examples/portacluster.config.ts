// The original portacluster (node0 + switch, pdu and six nodes), reimaged with a Debian golden image.
// This is the bundled default: `npm run build:image` builds it on a fresh Debian machine.
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
    // The fast path: firmware chainloads iPXE over TFTP, everything after it comes over HTTP.
    loader: 'ipxe',
    os: { name: 'debian', bootFrom: 'network', kernelArgs: [], serialConsole: 'ttyS0,115200' },
  },
  image: {
    name: 'debian',
    distro: 'debian',
    release: 'bookworm',
    // No mirror: mmdebstrap's default, deb.debian.org (plus -updates and -security), not this host's apt sources.
    packages: ['openssh-server', 'sudo', 'less', 'curl'],
    // The fast path: nodes write a verified ext4 image instead of unpacking the tarball.
    installMode: 'image',
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
