/**
 * dnsmasq.conf for proxy DHCP (dhcp.mode "proxy") and for UEFI HTTP-boot clients (boot.httpBoot):
 * golden files, the real `dnsmasq --test` on each, and the lines each mode stands on.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../build/lib/run.ts';
import { planCluster, type Plan } from '../build/plan/plan.ts';
import { renderDnsmasqConf } from '../build/render/dnsmasq.ts';
import { validateSpec } from '../build/spec/validate.ts';
import { baseSpec } from './fixtures/specs.ts';
import { expectGolden } from './helpers/golden.ts';
import { workspace } from './helpers/workspace.ts';

let ws: Awaited<ReturnType<typeof workspace>>;
beforeAll(async () => (ws = await workspace()));
afterAll(() => ws.cleanup());

/** Proxy mode beside a router: no range, no fixed IPs, no appliances; node2 on iPXE, node1 on pxelinux. */
export function proxyPlan(mutate: (s: Record<string, any>) => void = () => {}): Plan {
  const s = baseSpec();
  s.dhcp = { mode: 'proxy' };
  s.appliances = [];
  delete s.nodes[0].ip;
  s.nodes[1].loader = 'ipxe';
  mutate(s);
  return planCluster(validateSpec(s));
}

/** Server mode, the whole cluster on iPXE, UEFI HTTP-boot clients answered. */
function httpBootPlan(): Plan {
  const s = baseSpec();
  s.boot.loader = 'ipxe';
  s.boot.httpBoot = true;
  return planCluster(validateSpec(s));
}

async function dnsmasqTest(name: string, conf: string): Promise<string> {
  const file = join(ws.dir, name);
  await writeFile(file, conf);
  const r = await run(['dnsmasq', '--test', `--conf-file=${file}`]);
  return r.stderr + r.stdout;
}

const lines = (conf: string) => conf.split('\n');

describe('proxy DHCP (dhcp.mode "proxy")', () => {
  it('matches the golden file and passes dnsmasq --test', async () => {
    const conf = renderDnsmasqConf(proxyPlan());
    await expectGolden('proxy/etc/dnsmasq.conf', conf);
    expect(await dnsmasqTest('proxy.conf', conf)).toMatch(/syntax check OK/);
  });

  it('hands out no address and serves no DNS: a proxy range over the subnet, nodes by MAC only', () => {
    const conf = renderDnsmasqConf(proxyPlan());
    expect(lines(conf)).toEqual(expect.arrayContaining(['dhcp-range=192.168.10.0,proxy,255.255.255.0', 'port=0', 'dhcp-host=c0:3f:d5:60:e5:a1,node1', 'dhcp-host=c0:3f:d5:60:cd:8b,set:ipxe-node,node2']));
    expect(conf).not.toMatch(/^dhcp-authoritative/m);
    expect(conf).not.toMatch(/192\.168\.10\.1[1-9]\b/);
    // iPXE must wait for the proxy offer here: the server mode's "no ProxyDHCP wait" would make it boot nothing.
    expect(conf).not.toContain('encap:175');
  });

  it('every client arch gets a boot service: BIOS, both x86-64 UEFI numbers, and iPXE the HTTP script', () => {
    const conf = renderDnsmasqConf(proxyPlan());
    expect(lines(conf)).toEqual(
      expect.arrayContaining([
        'pxe-service=tag:!ipxe-node,x86PC,"testcluster",pxelinux.0',
        'pxe-service=tag:!ipxe-node,BC_EFI,"testcluster",syslinux.efi',
        'pxe-service=tag:!ipxe-node,x86-64_EFI,"testcluster",syslinux.efi',
        'pxe-service=tag:ipxe-node,tag:ipxe,x86PC,"testcluster",http://192.168.10.10/pxe/ipxe/boot.ipxe',
        'pxe-service=tag:ipxe-node,tag:!ipxe,BC_EFI,"testcluster",snponly.efi',
      ]),
    );
  });

  // dnsmasq hands a UEFI client its file on port 4011 only when exactly one pxe-service matches (else it
  // sends a menu that firmware handles badly): every client must see one service for its arch, never two.
  it.each([
    ['mixed loaders', () => proxyPlan()],
    ['all pxelinux', () => proxyPlan((s) => delete s.nodes[1].loader)],
    ['all iPXE', () => proxyPlan((s) => ((s.boot.loader = 'ipxe'), delete s.nodes[1].loader))],
  ])('%s: exactly one pxe-service per client arch and tag set', (_name, plan) => {
    const services = lines(renderDnsmasqConf(plan()))
      .filter((l) => l.startsWith('pxe-service='))
      .map((l) => {
        const parts = l.slice('pxe-service='.length).split(',');
        return { tags: parts.filter((p) => p.startsWith('tag:')).map((p) => p.slice(4)), csa: parts.find((p) => !p.startsWith('tag:'))! };
      });
    for (const nodeTag of [[], ['ipxe-node'], ['pxelinux']])
      for (const ipxe of [[], ['ipxe']])
        for (const csa of ['x86PC', 'BC_EFI', 'x86-64_EFI']) {
          const set = new Set([...nodeTag, ...ipxe]);
          const match = services.filter((s) => s.csa === csa && s.tags.every((t) => (t.startsWith('!') ? !set.has(t.slice(1)) : set.has(t))));
          expect(match.length, `${csa} with tags [${[...set]}]`).toBe(1);
        }
  });

  it('with boot.httpBoot: HTTPClient firmware is answered too (golden, dnsmasq --test)', async () => {
    const conf = renderDnsmasqConf(proxyPlan((s) => ((s.boot.loader = 'ipxe'), delete s.nodes[1].loader, (s.boot.httpBoot = true))));
    await expectGolden('proxy-httpboot/etc/dnsmasq.conf', conf);
    expect(await dnsmasqTest('proxy-httpboot.conf', conf)).toMatch(/syntax check OK/);
    expect(lines(conf)).toEqual(expect.arrayContaining(['dhcp-pxe-vendor=PXEClient,HTTPClient', 'dhcp-boot=tag:efihttp,tag:!ipxe,http://192.168.10.10/pxe/snponly.efi']));
  });
});

describe('UEFI HTTP boot (boot.httpBoot)', () => {
  it('matches the golden file and passes dnsmasq --test', async () => {
    const conf = renderDnsmasqConf(httpBootPlan());
    await expectGolden('httpboot/etc/dnsmasq.conf', conf);
    expect(await dnsmasqTest('httpboot.conf', conf)).toMatch(/syntax check OK/);
  });

  it('client-arch 16 gets iPXE by http:// URL with vendor class HTTPClient, and no TFTP loader', () => {
    const l = lines(renderDnsmasqConf(httpBootPlan()));
    expect(l).toEqual(
      expect.arrayContaining([
        'dhcp-match=set:efihttp,option:client-arch,16',
        'dhcp-boot=tag:efihttp,tag:!ipxe,http://192.168.10.10/pxe/snponly.efi',
        'dhcp-option-force=tag:efihttp,60,HTTPClient',
        // The BIOS loader line would otherwise match an HTTP-boot client too (it is not efi64).
        'dhcp-boot=tag:!ipxe,tag:!efihttp,tag:!efi64,undionly.kpxe',
      ]),
    );
  });

  it('a cluster without boot.httpBoot has no HTTP-boot lines', () => {
    const s = baseSpec();
    s.boot.loader = 'ipxe';
    const conf = renderDnsmasqConf(planCluster(validateSpec(s)));
    expect(conf).not.toMatch(/efihttp|HTTPClient/);
  });
});
