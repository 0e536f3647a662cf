/** etc/dnsmasq.conf: DHCP + TFTP bound to the cluster interface only. */
import { commentText, dnsmasqValue as v } from '../lib/escape.ts';
import type { Plan } from '../plan/plan.ts';
import { IPXE_BOOT_FILE, LOADER_FILES, PXE_DIR, ipxePath, urlFor } from '../layout.ts';

// Every value from the plan goes through v() (or commentText() in a comment): validated values pass
// unchanged, anything that could end the line or add a value is refused.
export function renderDnsmasqConf(plan: Plan): string {
  const tftpRoot = `${v('admin.servedRoot', plan.admin.servedRoot)}/${PXE_DIR}`;
  const host = (h: { mac: string; name: string; ip?: string; loader?: string }) =>
    `dhcp-host=${[v('mac', h.mac), h.loader && h.loader !== plan.boot.loader ? `set:${h.loader === 'ipxe' ? 'ipxe-node' : 'pxelinux'}` : undefined, v('name', h.name), h.ip && v('ip', h.ip)].filter(Boolean).join(',')}`;
  const domain = v('domain', plan.domain);
  const httpBase = v('admin.httpBase', plan.admin.httpBase);
  const other = plan.boot.loader === 'ipxe' ? 'pxelinux' : 'ipxe-node';
  // Nodes whose loader differs from the cluster's carry a tag; the cluster default needs none, so unknown
  // clients boot the cluster's loader.
  const mixed = plan.nodes.some((n) => n.loader !== plan.boot.loader);
  const uses = (loader: 'pxelinux' | 'ipxe') =>
    !mixed ? '' : plan.boot.loader === loader ? `tag:!${other},` : `tag:${loader === 'ipxe' ? 'ipxe-node' : 'pxelinux'},`;
  const loaders = plan.nodes.some((n) => n.loader === 'ipxe') || plan.boot.loader === 'ipxe';
  const pxelinuxUsed = plan.nodes.some((n) => n.loader === 'pxelinux') || plan.boot.loader === 'pxelinux';
  return [
    `# portacluster ${commentText('dnsmasq.conf', 'cluster', plan.cluster)}: dnsmasq for ${commentText('dnsmasq.conf', 'admin.hostname', plan.admin.hostname)} — generated; do not edit. Spec ${plan.specHash.slice(0, 16)}.`,
    '',
    '# Answer on the cluster interface only: never stomp on a foreign network.',
    `interface=${v('admin.interface', plan.admin.interface)}`,
    'bind-interfaces',
    'except-interface=lo',
    '',
    '# DNS for the cluster names; upstream queries go to the resolvers in /etc/resolv.conf.',
    `domain=${domain}`,
    `local=/${domain}/`,
    'domain-needed',
    'bogus-priv',
    'expand-hosts',
    '',
    'dhcp-authoritative',
    `dhcp-range=${v('dhcp.rangeStart', plan.dhcp.rangeStart)},${v('dhcp.rangeEnd', plan.dhcp.rangeEnd)},${v('netmask', plan.admin.netmask)},${v('dhcp.leaseTime', plan.dhcp.leaseTime)}`,
    `dhcp-option=option:domain-name,${domain}`,
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
          `dhcp-boot=${uses('pxelinux')}tag:!efi64,${LOADER_FILES.pxelinux}`,
          `dhcp-boot=${uses('pxelinux')}tag:efi64,${LOADER_FILES.syslinuxEfi}`,
        ]
      : []),
    ...(loaders
      ? [
          '',
          '# iPXE: clients already running iPXE get the HTTP entry script; other firmware chainloads iPXE over TFTP.',
          `dhcp-boot=${uses('ipxe')}tag:ipxe,${urlFor(httpBase, ipxePath(IPXE_BOOT_FILE))}`,
          `dhcp-boot=${uses('ipxe')}tag:!ipxe,tag:!efi64,${LOADER_FILES.ipxeBios}`,
          `dhcp-boot=${uses('ipxe')}tag:!ipxe,tag:efi64,${LOADER_FILES.ipxeEfi}`,
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
