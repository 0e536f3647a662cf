/** etc/dnsmasq.conf: DHCP + TFTP bound to the cluster interface only. */
import type { Plan } from '../plan/plan.ts';

/** The interface dnsmasq binds and the tree it serves over TFTP: node0's, or serve's overrides (the lab's bridge). */
export interface DnsmasqRuntime {
  interface: string;
  servedRoot: string;
}

export function renderDnsmasqConf(plan: Plan, rt: DnsmasqRuntime = { interface: plan.admin.interface, servedRoot: plan.admin.servedRoot }): string {
  const tftpRoot = `${rt.servedRoot}/pxe`;
  const host = (h: { mac: string; name: string; ip?: string; loader?: string }) =>
    `dhcp-host=${[h.mac, h.loader && h.loader !== plan.boot.loader ? `set:${h.loader === 'ipxe' ? 'ipxe-node' : 'pxelinux'}` : undefined, h.name, h.ip].filter(Boolean).join(',')}`;
  const other = plan.boot.loader === 'ipxe' ? 'pxelinux' : 'ipxe-node';
  // Nodes whose loader differs from the cluster's carry a tag; the cluster default needs none, so unknown
  // clients boot the cluster's loader.
  const mixed = plan.nodes.some((n) => n.loader !== plan.boot.loader);
  const uses = (loader: 'pxelinux' | 'ipxe') =>
    !mixed ? '' : plan.boot.loader === loader ? `tag:!${other},` : `tag:${loader === 'ipxe' ? 'ipxe-node' : 'pxelinux'},`;
  const loaders = plan.nodes.some((n) => n.loader === 'ipxe') || plan.boot.loader === 'ipxe';
  const pxelinuxUsed = plan.nodes.some((n) => n.loader === 'pxelinux') || plan.boot.loader === 'pxelinux';
  return [
    `# portacluster ${plan.cluster}: dnsmasq for ${plan.admin.hostname} — generated; do not edit. Spec ${plan.specHash.slice(0, 16)}.`,
    '',
    '# Answer on the cluster interface only: never stomp on a foreign network.',
    `interface=${rt.interface}`,
    'bind-interfaces',
    'except-interface=lo',
    '',
    '# DNS for the cluster names; upstream queries go to the resolvers in /etc/resolv.conf.',
    `domain=${plan.domain}`,
    `local=/${plan.domain}/`,
    'domain-needed',
    'bogus-priv',
    'expand-hosts',
    '',
    'dhcp-authoritative',
    `dhcp-range=${plan.dhcp.rangeStart},${plan.dhcp.rangeEnd},${plan.admin.netmask},${plan.dhcp.leaseTime}`,
    `dhcp-option=option:domain-name,${plan.domain}`,
    '',
    'enable-tftp',
    `tftp-root=${tftpRoot}`,
    '',
    'dhcp-match=set:efi64,option:client-arch,7',
    'dhcp-match=set:efi64,option:client-arch,9',
    '# iPXE (the NIC ROM in many machines and in QEMU) waits ~3 s for ProxyDHCP unless told not to.',
    'dhcp-userclass=set:ipxe,iPXE',
    'dhcp-option=tag:ipxe,encap:175,176,1',
    ...(pxelinuxUsed
      ? [
          '',
          '# pxelinux: x86-64 UEFI clients (client-arch 7 and 9) get syslinux.efi, BIOS clients pxelinux.0;',
          '# both read the same pxelinux.cfg/ tree over TFTP.',
          `dhcp-boot=${uses('pxelinux')}tag:!efi64,pxelinux.0`,
          `dhcp-boot=${uses('pxelinux')}tag:efi64,syslinux.efi`,
        ]
      : []),
    ...(loaders
      ? [
          '',
          '# iPXE: clients already running iPXE get the HTTP entry script; other firmware chainloads iPXE over TFTP.',
          `dhcp-boot=${uses('ipxe')}tag:ipxe,${plan.admin.httpBase}/pxe/ipxe/boot.ipxe`,
          `dhcp-boot=${uses('ipxe')}tag:!ipxe,tag:!efi64,undionly.kpxe`,
          `dhcp-boot=${uses('ipxe')}tag:!ipxe,tag:efi64,snponly.efi`,
        ]
      : []),
    '',
    '# Appliances: DHCP only.',
    ...plan.appliances.map(host),
    '',
    '# Nodes.',
    ...plan.nodes.map(host),
    '',
  ].join('\n');
}
