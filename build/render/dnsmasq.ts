/** etc/dnsmasq.conf: DHCP + TFTP bound to the cluster interface only (proxy DHCP in dnsmasq-proxy.ts). */
import { LOADER_FILES, PXE_DIR } from '../layout.ts';
import { node0Nodes } from '../plan/boot-server-view.ts';
import type { Plan } from '../plan/plan.ts';
import { EFI64_TAG, HTTP_BOOT_TAG, IPXE_TAG, dnsmasqHead, httpBootLoaderUrl, ipxeScriptUrl, loaderTags, v } from './dnsmasq-shared.ts';
import { renderProxyDnsmasqConf } from './dnsmasq-proxy.ts';

/** The interface dnsmasq binds and the tree it serves over TFTP: node0's, or serve's overrides (the lab's bridge). */
export interface DnsmasqRuntime {
  interface: string;
  servedRoot: string;
}

export const nodeDnsmasqRuntime = (plan: Plan): DnsmasqRuntime => ({ interface: plan.admin.interface, servedRoot: plan.admin.servedRoot });

export function renderDnsmasqConf(plan: Plan, rt: DnsmasqRuntime = nodeDnsmasqRuntime(plan)): string {
  const dhcp = plan.dhcp;
  if (dhcp.mode === 'proxy') return renderProxyDnsmasqConf(plan, rt);
  const tftpRoot = `${v('admin.servedRoot', rt.servedRoot)}/${PXE_DIR}`;
  const domain = v('domain', plan.domain);
  const { uses, ipxe, pxelinux, host } = loaderTags(plan);
  // An HTTP-boot client (client-arch 16) is neither efi64 nor BIOS: keep it off the TFTP loaders.
  const notHttp = plan.boot.httpBoot ? 'tag:!efihttp,' : '';
  return [
    ...dnsmasqHead(plan, rt.interface),
    '',
    '# DNS for the cluster names; upstream queries go to the resolvers in /etc/resolv.conf.',
    `domain=${domain}`,
    `local=/${domain}/`,
    'domain-needed',
    'bogus-priv',
    'expand-hosts',
    '',
    'dhcp-authoritative',
    `dhcp-range=${v('dhcp.rangeStart', dhcp.rangeStart)},${v('dhcp.rangeEnd', dhcp.rangeEnd)},${v('netmask', plan.admin.netmask)},${v('dhcp.leaseTime', dhcp.leaseTime)}`,
    `dhcp-option=option:domain-name,${domain}`,
    '',
    'enable-tftp',
    `tftp-root=${tftpRoot}`,
    '',
    ...EFI64_TAG,
    '# iPXE (the NIC ROM in many machines and in QEMU) waits ~3 s for ProxyDHCP unless told not to.',
    IPXE_TAG,
    'dhcp-option=tag:ipxe,encap:175,176,1',
    ...(pxelinux
      ? [
          '',
          '# pxelinux: x86-64 UEFI clients (client-arch 7 and 9) get syslinux.efi, BIOS clients pxelinux.0;',
          '# both read the same pxelinux.cfg/ tree over TFTP.',
          `dhcp-boot=${uses('pxelinux')}tag:!efi64,${LOADER_FILES.pxelinux}`,
          `dhcp-boot=${uses('pxelinux')}tag:efi64,${LOADER_FILES.syslinuxEfi}`,
        ]
      : []),
    ...(ipxe
      ? [
          '',
          '# iPXE: clients already running iPXE get the HTTP entry script; other firmware chainloads iPXE over TFTP.',
          `dhcp-boot=${uses('ipxe')}tag:ipxe,${ipxeScriptUrl(plan)}`,
          `dhcp-boot=${uses('ipxe')}tag:!ipxe,${notHttp}tag:!efi64,${LOADER_FILES.ipxeBios}`,
          `dhcp-boot=${uses('ipxe')}tag:!ipxe,tag:efi64,${LOADER_FILES.ipxeEfi}`,
        ]
      : []),
    ...(plan.boot.httpBoot
      ? [
          '',
          '# UEFI HTTP boot: firmware that boots over HTTP (client-arch 16) gets iPXE by URL and needs no TFTP;',
          '# it accepts only an answer whose vendor class is HTTPClient.',
          HTTP_BOOT_TAG,
          `dhcp-boot=tag:efihttp,tag:!ipxe,${httpBootLoaderUrl(plan)}`,
          'dhcp-option-force=tag:efihttp,60,HTTPClient',
        ]
      : []),
    '',
    '# Appliances: DHCP only.',
    ...plan.appliances.map((a) => host(a)),
    '',
    '# Nodes.',
    // Nodes behind a boot server get their addresses from its dnsmasq, on their rack's network.
    ...node0Nodes(plan).map((n) => host(n)),
    '',
  ].join('\n');
}
