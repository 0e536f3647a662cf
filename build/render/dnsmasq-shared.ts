/**
 * What the server-mode and proxy-mode dnsmasq.conf share: the header, per-node loader tags, client-arch tags.
 * Every value from the plan goes through v() (or commentText() in a comment): validated values pass
 * unchanged, anything that could end the line or add a value is refused.
 */
import { commentText, dnsmasqValue as v } from '../lib/escape.ts';
import { IPXE_BOOT_FILE, LOADER_FILES, ipxePath, pxePath, urlFor } from '../layout.ts';
import type { Plan } from '../plan/plan.ts';

export { v };

type Loader = 'pxelinux' | 'ipxe';

/** The header and the interface binding both modes start with. */
export function dnsmasqHead(plan: Plan, iface: string): string[] {
  return [
    dnsmasqHeader(plan),
    '',
    '# Answer on the cluster interface only: never stomp on a foreign network.',
    `interface=${v('admin.interface', iface)}`,
    'bind-interfaces',
    'except-interface=lo',
  ];
}

export function dnsmasqHeader(plan: Plan): string {
  return `# portacluster ${commentText('dnsmasq.conf', 'cluster', plan.cluster)}: dnsmasq for ${commentText('dnsmasq.conf', 'admin.hostname', plan.admin.hostname)} — generated; do not edit. Spec ${plan.specHash.slice(0, 16)}.`;
}

/**
 * Nodes whose loader differs from the cluster's carry a tag; the cluster default needs none, so unknown
 * clients boot the cluster's loader. `uses(loader)` is the tag prefix a boot line of that loader needs.
 */
export function loaderTags(plan: Plan) {
  const tagOf = (loader: Loader) => (loader === 'ipxe' ? 'ipxe-node' : 'pxelinux');
  const other = plan.boot.loader === 'ipxe' ? 'pxelinux' : 'ipxe-node';
  const mixed = plan.nodes.some((n) => n.loader !== plan.boot.loader);
  return {
    uses: (loader: Loader) => (!mixed ? '' : plan.boot.loader === loader ? `tag:!${other},` : `tag:${tagOf(loader)},`),
    ipxe: plan.boot.loaders.ipxe,
    pxelinux: plan.boot.loaders.pxelinux,
    /** dhcp-host=<mac>[,set:<loader tag>],<name>[,<ip>]; `withIp` false where another server owns the addresses. */
    host: (h: { mac: string; name: string; ip?: string; loader?: Loader }, withIp = true) =>
      `dhcp-host=${[v('mac', h.mac), h.loader && h.loader !== plan.boot.loader ? `set:${tagOf(h.loader)}` : undefined, v('name', h.name), withIp && h.ip ? v('ip', h.ip) : undefined].filter(Boolean).join(',')}`,
  };
}

/** x86-64 UEFI PXE clients say client-arch 7 (EFI BC) or 9 (EFI x86-64). */
export const EFI64_TAG = ['dhcp-match=set:efi64,option:client-arch,7', 'dhcp-match=set:efi64,option:client-arch,9'];
/** A client already running iPXE says so in its user class. */
export const IPXE_TAG = 'dhcp-userclass=set:ipxe,iPXE';

/** UEFI HTTP boot (client-arch 16): such firmware takes only an answer with vendor class HTTPClient and a URL. */
export const HTTP_BOOT_TAG = 'dhcp-match=set:efihttp,option:client-arch,16';
export const httpBootLoaderUrl = (plan: Plan) => urlFor(v('admin.httpBase', plan.admin.httpBase), pxePath(LOADER_FILES.ipxeEfi));
export const ipxeScriptUrl = (plan: Plan) => urlFor(v('admin.httpBase', plan.admin.httpBase), ipxePath(IPXE_BOOT_FILE));
