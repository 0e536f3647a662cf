/**
 * `why <node>`: a node's boot chain, read from the spec, the served tree and the state file, link by link
 * in the order the node walks it — its DHCP answer, the loader its firmware gets, its per-MAC link and the
 * profile behind it, the kernel and initrd that profile boots, its last reports, and what `done` will do.
 * The first link that is broken (a missing file, a dangling link, a MAC that dnsmasq.conf does not know)
 * is named; what comes after it is not checked, since the node never gets there.
 */
import { lstat, readFile, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DNSMASQ_CONF, IPXE_DIR, LOADER_FILES, PXE_DIR, PXELINUX_DIR, ipxeNodeFile, pxelinuxNodeFile } from '../layout.ts';
import type { Plan, PlanNode } from '../plan/plan.ts';
import type { NodeState } from './state.ts';

export interface WhyStep {
  what: string;
  ok: boolean;
  detail: string;
}

export interface WhyResult {
  node: string;
  mac: string;
  steps: WhyStep[];
  /** The first broken step's `what`, if any. */
  broken: string | null;
  state: Pick<NodeState, 'state' | 'phase' | 'updated' | 'detail'> | null;
  onDone: string;
}

const exists = (p: string) => stat(p).then(() => true, () => false);

/** The loader a node's firmware is handed, by the spec's loader and firmware (what dnsmasq.conf says). */
function loaderFile(node: PlanNode): string {
  if (node.loader === 'ipxe') return node.firmware === 'uefi' ? LOADER_FILES.ipxeEfi : LOADER_FILES.ipxeBios;
  return node.firmware === 'uefi' ? LOADER_FILES.syslinuxEfi : LOADER_FILES.pxelinux;
}

/** Kernel, initrds and command line of a pxelinux or iPXE profile file, as paths under the TFTP root. */
function bootFiles(text: string, loader: PlanNode['loader']): { kernel: string | null; initrds: string[]; append: string } {
  if (loader === 'pxelinux') {
    const field = (k: string) => new RegExp(`^\\s*${k}\\s+(.+)$`, 'mi').exec(text)?.[1]?.trim() ?? null;
    const strip = (p: string) => p.replace(/^\//, '');
    return { kernel: field('(?:LINUX|KERNEL)') && strip(field('(?:LINUX|KERNEL)')!), initrds: (field('INITRD') ?? '').split(',').filter(Boolean).map(strip), append: field('APPEND') ?? '' };
  }
  // iPXE: `kernel <url> <args>` and `initrd <url>`; the URL's path under /pxe/ is the file.
  const pxeFile = (url: string) => url.replace(/^https?:\/\/[^/]+\//, '').replace(new RegExp(`^${PXE_DIR}/`), '');
  const kernel = /^\s*kernel\s+(\S+)\s*(.*)$/m.exec(text);
  const initrds = [...text.matchAll(/^\s*initrd\s+(\S+)/gm)].map((m) => pxeFile(m[1]!));
  return { kernel: kernel ? pxeFile(kernel[1]!) : null, initrds, append: kernel?.[2]?.trim() ?? '' };
}

export async function explainNode(plan: Plan, node: PlanNode, root: string, state: NodeState | undefined): Promise<WhyResult> {
  const steps: WhyStep[] = [];
  const step = (what: string, ok: boolean, detail: string) => void steps.push({ what, ok, detail });
  const pxe = join(root, PXE_DIR);
  run: {
    // 1. DHCP: node0's dnsmasq must know the MAC (server mode: its fixed address; proxy: its boot answer).
    const conf = await readFile(join(root, DNSMASQ_CONF), 'utf8').catch(() => null);
    const line = conf?.split('\n').find((l) => l.startsWith(`dhcp-host=${node.mac},`));
    if (!conf) {
      step('dhcp', false, `no ${DNSMASQ_CONF} in ${root}: node0's dnsmasq has no config from this tree`);
      break run;
    }
    if (!line) {
      step('dhcp', false, `${node.mac} is not in ${DNSMASQ_CONF}: dnsmasq answers it as an unknown client (boot.default), not as ${node.name}; rebuild and deploy the tree`);
      break run;
    }
    step('dhcp', true, plan.dhcp.mode === 'proxy' ? `proxy DHCP: the network's own server gives the address; node0 answers ${node.mac} with what to boot (${line})` : `${line}: ${node.ip ? `fixed address ${node.ip}` : 'an address from the dynamic range'}`);
    // 2. The loader the firmware gets over TFTP.
    const loader = loaderFile(node);
    if (!(await exists(join(pxe, loader)))) {
      step('loader', false, `${node.firmware} firmware gets ${loader}, which is missing from ${pxe}`);
      break run;
    }
    step('loader', true, `${node.firmware} firmware gets ${loader} over TFTP (${node.loader}${node.loader === 'ipxe' ? ', then its scripts over HTTP' : ''})`);
    // 3. The per-MAC link and the profile it points at.
    const linkRel = node.loader === 'ipxe' ? `${IPXE_DIR}/${ipxeNodeFile(node.mac)}` : `${PXELINUX_DIR}/${pxelinuxNodeFile(node.mac)}`;
    const link = join(root, linkRel);
    const isLink = await lstat(link).then((s) => s.isSymbolicLink(), () => null);
    if (isLink === null) {
      step('link', false, `no ${linkRel}: the loader falls back to the default profile (${plan.profiles.default}); portacluster reimage|normal ${node.name} makes the link`);
      break run;
    }
    const target = isLink ? await readlink(link) : '(a file, not a link)';
    const text = await readFile(link, 'utf8').catch(() => null);
    if (text === null) {
      step('link', false, `${linkRel} → ${target} dangles: the profile file is missing; rebuild the tree, or switch the node to a profile that exists`);
      break run;
    }
    step('link', true, `${linkRel} → ${target}`);
    // 4. What that profile boots, and whether its files are there.
    const files = bootFiles(text, node.loader);
    const missing = [files.kernel, ...files.initrds].filter((f): f is string => !!f);
    const absent: string[] = [];
    for (const f of missing) if (!(await exists(join(pxe, f)))) absent.push(f);
    if (!files.kernel || absent.length) {
      step('boot', false, !files.kernel ? `the profile ${target} names no kernel` : `the profile ${target} boots ${absent.join(', ')}, missing from ${pxe}`);
      break run;
    }
    step('boot', true, `kernel ${files.kernel}, initrd ${files.initrds.join(' + ') || '(none)'}, command line: ${files.append}`);
  }
  const broken = steps.find((s) => !s.ok)?.what ?? null;
  const onDone =
    state?.state === 'requested' || state?.state === 'installing'
      ? `when its installer reports done, the watcher switches its links to ${plan.profiles.os} and it boots the installed OS`
      : `a done report now changes nothing: it was not requested (portacluster reimage ${node.name} requests one)`;
  return { node: node.name, mac: node.mac, steps, broken, state: state ? { state: state.state, phase: state.phase, updated: state.updated, ...(state.detail ? { detail: state.detail } : {}) } : null, onDone };
}

export function whyText(r: WhyResult): string {
  const lines = [`${r.node} (${r.mac})`];
  for (const s of r.steps) lines.push(`  ${s.ok ? 'ok    ' : 'BROKEN'} ${s.what.padEnd(6)} ${s.detail}`);
  lines.push(r.broken ? `  the chain breaks at "${r.broken}": the node does not get past it` : '  the chain is whole');
  lines.push(`  state  ${r.state ? `${r.state.state}, phase ${r.state.phase}, last report ${r.state.updated}${r.state.detail ? ` (${r.state.detail.split('\n').pop()})` : ''}` : 'no report yet'}`);
  lines.push(`  next   ${r.onDone}`);
  return lines.join('\n');
}
