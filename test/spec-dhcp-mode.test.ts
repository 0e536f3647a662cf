/** dhcp.mode and boot.httpBoot in the spec: what each mode requires, and what stops applying in proxy mode. */
import { describe, expect, it } from 'vitest';
import { planCluster } from '../build/plan/plan.ts';
import { validateSpec } from '../build/spec/validate.ts';
import { baseSpec, problems } from './fixtures/specs.ts';

/** The base spec made valid for proxy mode: no range, lease time, fixed IP or appliance. */
const proxy = (s: Record<string, any>) => {
  s.dhcp = { mode: 'proxy' };
  s.appliances = [];
  delete s.nodes[0].ip;
};

const ROUTER = 'in dhcp.mode "proxy" the network\'s own DHCP server (the router) hands out addresses';

describe('dhcp.mode', () => {
  it('defaults to server, with the lease time defaulting to 1h', () => {
    const s = baseSpec();
    delete s.dhcp.leaseTime;
    expect(planCluster(validateSpec(s)).dhcp).toEqual({ mode: 'server', rangeStart: '192.168.10.130', rangeEnd: '192.168.10.180', leaseTime: '1h' });
  });

  it('proxy: valid without a range; the plan carries the mode only', () => {
    const s = baseSpec();
    proxy(s);
    const plan = planCluster(validateSpec(s));
    expect(plan.dhcp).toEqual({ mode: 'proxy' });
    expect(plan.nodes.map((n) => n.ip)).toEqual([undefined, undefined]);
  });

  const INVALID: [string, (s: Record<string, any>) => void, string[]][] = [
    ['unknown mode', (s) => (s.dhcp.mode = 'relay'), ['dhcp.mode: must be one of "server" | "proxy" (got "relay")']],
    [
      'server mode without a range',
      (s) => (delete s.dhcp.rangeStart, delete s.dhcp.rangeEnd),
      [
        'dhcp.rangeStart: is required with dhcp.mode "server" | hint: the dynamic range node0 hands out; or dhcp.mode "proxy" when another DHCP server (a router) owns the network',
        'dhcp.rangeEnd: is required with dhcp.mode "server" | hint: the dynamic range node0 hands out; or dhcp.mode "proxy" when another DHCP server (a router) owns the network',
      ],
    ],
    [
      'proxy mode with the range and lease time still there',
      (s) => (proxy(s), (s.dhcp = { mode: 'proxy', rangeStart: '192.168.10.130', rangeEnd: '192.168.10.180', leaseTime: '1h' })),
      [
        `dhcp.rangeStart: does not apply: ${ROUTER} | hint: drop dhcp.rangeStart, or use dhcp.mode "server"`,
        `dhcp.rangeEnd: does not apply: ${ROUTER} | hint: drop dhcp.rangeEnd, or use dhcp.mode "server"`,
        `dhcp.leaseTime: does not apply: ${ROUTER} | hint: drop dhcp.leaseTime, or use dhcp.mode "server"`,
      ],
    ],
    ['proxy mode with a fixed node IP', (s) => (proxy(s), (s.nodes[1].ip = '192.168.10.12')), [`nodes[1].ip: does not apply: ${ROUTER} | hint: reserve the address for this MAC on the router, and drop ip here`]],
    [
      'proxy mode with {ip} in a reboot command',
      (s) => (proxy(s), (s.nodes[0].reboot = ['ipmitool', '-H', 'bmc-{ip}', 'power', 'cycle'])),
      ['nodes[0].reboot[2]: uses {ip}, which node0 does not know in dhcp.mode "proxy" | hint: use {name} or {mac}, or write the address the router reserves'],
    ],
    [
      'proxy mode with an appliance',
      (s) => (proxy(s), (s.appliances = [{ name: 'switch', mac: 'c4:04:15:90:bf:b4' }])),
      [`appliances[0]: portacluster only gives appliances DHCP, and ${ROUTER} | hint: drop the appliance (configure it on the router), or use dhcp.mode "server"`],
    ],
  ];
  it.each(INVALID)('%s', (_name, mutate, expected) => expect(problems(mutate)).toEqual(expected));
});

describe('boot.httpBoot', () => {
  it('defaults to false; with the cluster on iPXE it plans true', () => {
    expect(planCluster(validateSpec(baseSpec())).boot.httpBoot).toBe(false);
    const s = baseSpec();
    s.boot.loader = 'ipxe';
    s.boot.httpBoot = true;
    expect(planCluster(validateSpec(s)).boot).toMatchObject({ loader: 'ipxe', httpBoot: true });
  });

  it('needs the cluster on iPXE', () => {
    expect(problems((s) => (s.boot.httpBoot = true))).toEqual(['boot.httpBoot: needs boot.loader "ipxe" | hint: UEFI HTTP boot loads iPXE (snponly.efi) by URL; pxelinux is loaded over TFTP only']);
  });

  it('refuses a node kept on pxelinux', () => {
    expect(problems((s) => ((s.boot.loader = 'ipxe'), (s.boot.httpBoot = true), (s.nodes[0].loader = 'pxelinux')))).toEqual([
      'nodes[0].loader: pxelinux cannot be used with boot.httpBoot | hint: drop the per-node loader (iPXE), or turn boot.httpBoot off',
    ]);
  });
});
