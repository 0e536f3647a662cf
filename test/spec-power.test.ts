/** nodes[].power and the cluster-wide power: the rules over secret references and placeholders, the union's error words, and the plan. */
import { describe, expect, it } from 'vitest';
import { planCluster, APC_OUTLET_CTL } from '../build/plan/plan.ts';
import { validateSpec } from '../build/spec/validate.ts';
import { baseSpec, problems } from './fixtures/specs.ts';

const ipmi = { type: 'ipmi', host: '{name}-bmc', user: 'ADMIN', passwordFile: '/etc/pc/ipmi.pw' };

describe('power rules', () => {
  it.each<[string, (s: Record<string, any>) => void, string[]]>([
    ['ipmi without a password reference', (s) => (s.nodes[0].power = { ...ipmi, passwordFile: undefined }), ['nodes[0].power: needs the BMC password: give passwordFile or passwordEnv | hint: passwordFile: a file on node0 with mode 0600 holding it; passwordEnv: the environment variable that holds it']],
    ['redfish with both references', (s) => (s.power = { type: 'redfish', url: 'https://{name}-bmc', user: 'root', passwordFile: '/a', passwordEnv: 'A' }), ['power.passwordEnv: give only one of passwordFile and passwordEnv | hint: which one should be read would otherwise depend on the host']],
    ['pdu v2c without a community', (s) => (s.nodes[0].power = { type: 'pdu', host: 'pdu', outlets: [1] }), ['nodes[0].power: needs the SNMP v2c write community: give communityFile or communityEnv | hint: communityFile: a file on node0 with mode 0600 holding it; communityEnv: the environment variable that holds it']],
    ['pdu v2c with v3 fields', (s) => (s.nodes[0].power = { type: 'pdu', host: 'pdu', outlets: [1], communityEnv: 'C', user: 'u' }), ['nodes[0].power.user: is an SNMP v3 field, and this PDU is spoken to with v2c | hint: set version: "3", or drop it']],
    ['pdu v3 without user and auth', (s) => (s.nodes[0].power = { type: 'pdu', version: '3', host: 'pdu', outlets: [1] }), ['nodes[0].power.user: is required with SNMP v3 (the security name)', 'nodes[0].power: needs the SNMP v3 authentication passphrase: give passwordFile or passwordEnv | hint: passwordFile: a file on node0 with mode 0600 holding it; passwordEnv: the environment variable that holds it']],
    ['pdu v3 with a community', (s) => (s.nodes[0].power = { type: 'pdu', version: '3', host: 'pdu', outlets: [1], user: 'u', passwordEnv: 'A', communityEnv: 'C' }), ['nodes[0].power.communityEnv: is an SNMP v2c field, and this PDU is spoken to with v3 | hint: v3 authenticates with user and passwordFile/passwordEnv']],
    ['pdu v3 privProtocol without a passphrase', (s) => (s.nodes[0].power = { type: 'pdu', version: '3', host: 'pdu', outlets: [1], user: 'u', passwordEnv: 'A', privProtocol: 'AES' }), ['nodes[0].power: privProtocol needs the privacy passphrase: give privPasswordFile or privPasswordEnv']],
    ['pdu v3 passphrase without privProtocol', (s) => (s.nodes[0].power = { type: 'pdu', version: '3', host: 'pdu', outlets: [1], user: 'u', passwordEnv: 'A', privPasswordEnv: 'P' }), ['nodes[0].power.privProtocol: is required with a privacy passphrase (AES or DES) | hint: or drop privPasswordFile/privPasswordEnv for authNoPriv']],
    ['{ip} on a node without ip', (s) => (s.nodes[1].power = { ...ipmi, host: 'bmc-{ip}' }), ['nodes[1].power.host: uses {ip}, and node2 has no ip in the spec | hint: give the node an ip, or use {name} or {mac}']],
    ['cluster {ip} inherited by a node without ip', (s) => (s.power = { type: 'command', cycle: ['pdu', '{ip}'] }), ['power.cycle[1]: uses {ip}, and node2 has no ip in the spec | hint: give the node an ip, or use {name} or {mac}']],
    ['{ip} in proxy mode', (s) => {
      s.dhcp = { mode: 'proxy' };
      delete s.nodes[0].ip;
      s.appliances = [];
      s.power = { type: 'redfish', url: 'https://{ip}', user: 'root', passwordEnv: 'A' };
    }, ['power.url: uses {ip}, which node0 does not know in dhcp.mode "proxy" | hint: use {name} or {mac}, or write the address']],
    ['reboot beside power', (s) => ((s.nodes[0].reboot = ['x']), (s.nodes[0].power = ipmi)), ['nodes[0].reboot: cannot be given together with nodes[0].power | hint: move the command into power: { type: "command", cycle: [...] }, or drop reboot']],
    ['reboot beside the cluster power', (s) => ((s.nodes[0].reboot = ['x']), (s.power = ipmi)), ['nodes[0].reboot: would be ignored: the cluster-wide power applies to this node | hint: write nodes[0].power: { type: "command", cycle: [...] } to keep this command for this node']],
    ['an unknown type', (s) => (s.power = { type: 'ipmx', host: 'x' }), ['power.type: unknown type "ipmx" | hint: one of "ipmi", "redfish", "pdu", "ssh", "command"']],
    ['no type', (s) => (s.nodes[0].power = { host: 'x' }), ['nodes[0].power.type: is required | hint: one of "ipmi", "redfish", "pdu", "ssh", "command"']],
    ['a bad field of the matching branch, at its path', (s) => (s.nodes[0].power = { ...ipmi, port: 0 }), ['nodes[0].power.port: must be >= 1 (got 0)']],
    ['a generic scheme missing a value', (s) => (s.nodes[0].power = { type: 'pdu', host: 'p', outlets: [1], communityEnv: 'C', scheme: { oid: '.1.2.3', on: 1 } }), ['nodes[0].power.scheme.off: is required']],
  ])('%s', (_what, mutate, expected) => {
    expect(problems(mutate)).toEqual(expected);
  });

  it('accepts lan, v3 authPriv and {ip} where every user has an ip', () => {
    expect(problems((s) => (s.nodes[0].power = { ...ipmi, interface: 'lan', host: '{ip}' }))).toEqual([]);
    expect(problems((s) => (s.nodes[0].power = { type: 'pdu', version: '3', host: 'pdu', outlets: [1], user: 'u', passwordFile: '/a', privProtocol: 'DES', privPasswordFile: '/b' }))).toEqual([]);
    expect(problems((s) => ((s.nodes[1].power = { type: 'ssh' }), (s.power = { type: 'command', cycle: ['x', '{ip}'] })))).toEqual([]);
  });
});

describe('planned power', () => {
  const plan = (mutate: (s: Record<string, any>) => void) => {
    const s = baseSpec();
    mutate(s);
    return planCluster(validateSpec(s)).nodes;
  };

  it('node power, else cluster power, else reboot, else ssh; defaults filled, placeholders substituted, secrets as references', () => {
    const [n1, n2] = plan((s) => {
      s.nodes[0].power = { type: 'pdu', host: '{name}-pdu', outlets: [3], communityFile: '/etc/pc/community' };
      s.power = { ...ipmi, cipherSuite: 17 };
    });
    expect(n1!.power).toEqual({ type: 'pdu', host: 'node1-pdu', port: 161, version: '2c', community: { file: '/etc/pc/community' }, outlets: [3], scheme: { ...APC_OUTLET_CTL }, offSeconds: 5 });
    expect(n2!.power).toEqual({ type: 'ipmi', host: 'node2-bmc', port: 623, user: 'ADMIN', password: { file: '/etc/pc/ipmi.pw' }, interface: 'lanplus', cipherSuite: 17 });
    const [r1, r2] = plan((s) => (s.nodes[0].reboot = ['pdu-cycle', '{ip}', '{mac}']));
    expect(r1!.power).toEqual({ type: 'command', cycle: ['pdu-cycle', '192.168.10.11', 'c0:3f:d5:60:e5:a1'] });
    expect(r2!.power).toEqual({ type: 'ssh' });
    const [v3] = plan((s) => (s.nodes[0].power = { type: 'pdu', version: '3', host: 'p', outlets: [1], user: 'u', passwordEnv: 'AUTH', privProtocol: 'AES', privPasswordEnv: 'PRIV', scheme: { oid: '.1.2.3', on: 1, off: 0 } }));
    expect(v3!.power).toEqual({ type: 'pdu', host: 'p', port: 161, version: '3', user: 'u', authProtocol: 'SHA', auth: { env: 'AUTH' }, privProtocol: 'AES', priv: { env: 'PRIV' }, outlets: [1], scheme: { oid: '.1.2.3', on: 1, off: 0 }, offSeconds: 5 });
    const [rf] = plan((s) => (s.nodes[0].power = { type: 'redfish', url: 'https://{name}-bmc:8443', user: 'root', passwordEnv: 'BMC' }));
    expect(rf!.power).toEqual({ type: 'redfish', url: 'https://node1-bmc:8443', user: 'root', password: { env: 'BMC' }, insecure: false });
  });
});
