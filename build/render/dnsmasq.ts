/** etc/dnsmasq.conf: DHCP + TFTP bound to the cluster interface only. */
import type { Plan } from '../plan/plan.ts';

export function renderDnsmasqConf(plan: Plan): string {
  const tftpRoot = `${plan.admin.servedRoot}/pxe`;
  const host = (h: { mac: string; name: string; ip?: string }) => `dhcp-host=${[h.mac, h.name, h.ip].filter(Boolean).join(',')}`;
  return [
    `# portacluster ${plan.cluster}: dnsmasq for ${plan.admin.hostname} — generated; do not edit. Spec ${plan.specHash.slice(0, 16)}.`,
    '',
    '# Answer on the cluster interface only: never stomp on a foreign network.',
    `interface=${plan.admin.interface}`,
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
    '# x86-64 UEFI clients (client-arch 7 and 9) get syslinux.efi; BIOS clients get pxelinux.0.',
    '# Both read the same pxelinux.cfg/ tree.',
    'dhcp-match=set:efi64,option:client-arch,7',
    'dhcp-match=set:efi64,option:client-arch,9',
    'dhcp-boot=tag:!efi64,pxelinux.0',
    'dhcp-boot=tag:efi64,syslinux.efi',
    '',
    '# iPXE (the NIC ROM in many machines and in QEMU) waits ~3 s for ProxyDHCP unless told not to.',
    'dhcp-userclass=set:ipxe,iPXE',
    'dhcp-option=tag:ipxe,encap:175,176,1',
    '',
    '# Appliances: DHCP only.',
    ...plan.appliances.map(host),
    '',
    '# Nodes.',
    ...plan.nodes.map(host),
    '',
  ].join('\n');
}
