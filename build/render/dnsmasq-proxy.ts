/**
 * etc/dnsmasq.conf in proxy mode (dhcp.mode "proxy"): another DHCP server (a home router) owns the
 * network and hands out every address; node0's dnsmasq only answers network-boot clients, by MAC, with
 * what to boot. PXE firmware and iPXE both read a proxy offer: BIOS and UEFI firmware get their loader
 * over TFTP, iPXE the HTTP entry script, UEFI HTTP-boot firmware iPXE by URL.
 */
import { commentText } from '../lib/escape.ts';
import { LOADER_FILES, PXE_DIR } from '../layout.ts';
import { node0Nodes } from '../plan/boot-server-view.ts';
import type { Plan } from '../plan/plan.ts';
import { EFI64_TAG, HTTP_BOOT_TAG, IPXE_TAG, dnsmasqHead, httpBootLoaderUrl, ipxeScriptUrl, loaderTags, v } from './dnsmasq-shared.ts';

/** PXE client system types (option 93) as dnsmasq names them: BIOS, and x86-64 UEFI under both its numbers. */
const BIOS = ['x86PC'];
const UEFI = ['BC_EFI', 'x86-64_EFI'];

export function renderProxyDnsmasqConf(plan: Plan, rt: { interface: string; servedRoot: string }): string {
  const { uses, ipxe, pxelinux, host } = loaderTags(plan);
  // The menu title is quoted text: the cluster name's pattern allows no quote, and commentText refuses line breaks.
  const menu = `"${commentText('dnsmasq.conf', 'cluster', plan.cluster)}"`;
  const service = (tags: string, csas: string[], file: string) => csas.map((csa) => `pxe-service=${tags}${csa},${menu},${file}`);
  return [
    ...dnsmasqHead(plan, rt.interface),
    '',
    "# Proxy DHCP: the network's own DHCP server hands out addresses, names and DNS; this one gives no",
    '# address and no DNS, only boot information to network-boot clients (vendor class PXEClient, and',
    '# HTTPClient with boot.httpBoot).',
    'port=0',
    `dhcp-range=${v('network', plan.admin.network)},proxy,${v('netmask', plan.admin.netmask)}`,
    ...(plan.boot.httpBoot ? ['dhcp-pxe-vendor=PXEClient,HTTPClient'] : []),
    '# Boot the first (only) menu entry at once.',
    `pxe-prompt=${menu},0`,
    '',
    'enable-tftp',
    `tftp-root=${v('admin.servedRoot', rt.servedRoot)}/${PXE_DIR}`,
    '',
    ...EFI64_TAG,
    IPXE_TAG,
    ...(pxelinux
      ? [
          '',
          '# pxelinux: BIOS clients get pxelinux.0, x86-64 UEFI clients syslinux.efi, over TFTP.',
          ...service(uses('pxelinux'), BIOS, LOADER_FILES.pxelinux),
          ...service(uses('pxelinux'), UEFI, LOADER_FILES.syslinuxEfi),
        ]
      : []),
    ...(ipxe
      ? [
          '',
          '# iPXE: clients already running iPXE get the HTTP entry script; other firmware chainloads iPXE over TFTP.',
          ...service(`${uses('ipxe')}tag:ipxe,`, [...BIOS, ...UEFI], ipxeScriptUrl(plan)),
          ...service(`${uses('ipxe')}tag:!ipxe,`, BIOS, LOADER_FILES.ipxeBios),
          ...service(`${uses('ipxe')}tag:!ipxe,`, UEFI, LOADER_FILES.ipxeEfi),
        ]
      : []),
    ...(plan.boot.httpBoot
      ? [
          '',
          '# UEFI HTTP boot: firmware that boots over HTTP (client-arch 16) gets iPXE by URL and needs no TFTP;',
          '# it accepts only an answer whose vendor class is HTTPClient, which a proxy reply echoes from',
          '# dhcp-pxe-vendor above (proxy replies carry no dhcp-option lines).',
          HTTP_BOOT_TAG,
          `dhcp-boot=tag:efihttp,tag:!ipxe,${httpBootLoaderUrl(plan)}`,
        ]
      : []),
    '',
    '# Nodes, known by MAC (their addresses come from the other DHCP server).',
    ...node0Nodes(plan).map((n) => host(n, false)),
    '',
  ].join('\n');
}
