/**
 * The spec's power section (nodes[].power and the cluster-wide power): one TypeBox union per way node0
 * can power a node. Split from schema.ts, which imports it; the drivers are in build/power/.
 */
import { Type as T } from '@sinclair/typebox';
import { str } from './patterns.ts';

/**
 * Defaults inside the power union, applied by planCluster (ajv would apply one branch's defaults to
 * another's object). schema.ts lists them in PLANNED_DEFAULTS.power.
 */
export const POWER_DEFAULTS = { ipmiPort: 623, ipmiInterface: 'lanplus', snmpPort: 161, snmpVersion: '2c', pduScheme: 'apc', offSeconds: 5, redfishInsecure: false, snmpAuthProtocol: 'SHA' } as const;

/**
 * How node0 powers a node. Secrets are never values in the spec: a password (or SNMP community) is named
 * by reference — a file on node0 readable only by its owner, or an environment variable of the process
 * that runs the power command — and read only at the moment a driver talks to the BMC or PDU, so it never
 * reaches the plan, dist/, the served spec copy, logs or --json output.
 */
const secretRef = (what: string) => ({
  passwordFile: T.Optional(str('absPath', `File on node0 holding the ${what} (first line; mode 0600 or 0400: a world-readable file is refused).`)),
  passwordEnv: T.Optional(str('envName', `Environment variable holding the ${what}.`)),
});

export const PowerIpmi = T.Object(
  {
    type: T.Literal('ipmi'),
    host: str('bmcHost', "The BMC's address."),
    port: T.Optional(T.Integer({ description: `RMCP port (default ${POWER_DEFAULTS.ipmiPort}).`, minimum: 1, maximum: 65535 })),
    user: str('bmcUser', 'BMC user name.'),
    ...secretRef('BMC password'),
    interface: T.Optional(
      T.Union([T.Literal('lanplus'), T.Literal('lan')], {
        description: `ipmitool interface: lanplus (IPMI 2.0 RMCP+, what current BMCs speak) or lan (IPMI 1.5). Default ${POWER_DEFAULTS.ipmiInterface}. Warning: lan is for old BMCs only — its authentication is weak (MD5 at best, the password crosses the network nearly in the clear) and most current BMCs have it disabled, so "lan" against one of them fails; it is the common pitfall.`,
      }),
    ),
    cipherSuite: T.Optional(T.Integer({ description: 'RMCP+ cipher suite id (ipmitool -C); default: the one ipmitool picks.', minimum: 0, maximum: 17 })),
  },
  { additionalProperties: false, description: 'A BMC over IPMI, driven with ipmitool.' },
);

export const PowerRedfish = T.Object(
  {
    type: T.Literal('redfish'),
    url: str('redfishUrl', "The BMC's base URL."),
    systemId: T.Optional(str('redfishId', 'The ComputerSystem id; default: the only member of /redfish/v1/Systems.')),
    user: str('bmcUser', 'BMC user name.'),
    ...secretRef('BMC password'),
    insecure: T.Optional(T.Boolean({ description: 'Accept a BMC certificate no CA vouches for (self-signed). Default false: the certificate is verified.' })),
    caFile: T.Optional(str('absPath', 'A CA certificate (PEM) on node0 that signed the BMC certificate.')),
  },
  { additionalProperties: false, description: 'A BMC over Redfish (HTTPS).' },
);

export const PowerPdu = T.Object(
  {
    type: T.Literal('pdu'),
    host: str('bmcHost', "The PDU's SNMP agent address."),
    port: T.Optional(T.Integer({ description: `SNMP port (default ${POWER_DEFAULTS.snmpPort}).`, minimum: 1, maximum: 65535 })),
    version: T.Optional(T.Union([T.Literal('2c'), T.Literal('3')], { description: `SNMP version (default ${POWER_DEFAULTS.snmpVersion}).` })),
    communityFile: T.Optional(str('absPath', 'v2c: file on node0 holding the write community (mode 0600 or 0400).')),
    communityEnv: T.Optional(str('envName', 'v2c: environment variable holding the write community.')),
    user: T.Optional(str('bmcUser', 'v3: security name.')),
    authProtocol: T.Optional(T.Union([T.Literal('SHA'), T.Literal('MD5')], { description: `v3: authentication protocol (default ${POWER_DEFAULTS.snmpAuthProtocol}).` })),
    ...secretRef('v3 authentication passphrase'),
    privProtocol: T.Optional(T.Union([T.Literal('AES'), T.Literal('DES')], { description: 'v3: privacy protocol; with it, the privacy passphrase.' })),
    privPasswordFile: T.Optional(str('absPath', 'v3: file holding the privacy passphrase (mode 0600 or 0400).')),
    privPasswordEnv: T.Optional(str('envName', 'v3: environment variable holding the privacy passphrase.')),
    outlets: T.Array(T.Integer({ minimum: 1, maximum: 4096 }), { minItems: 1, maxItems: 8, description: 'The outlet(s) feeding this node (all are switched together).' }),
    scheme: T.Optional(
      T.Union(
      [
        T.Literal('apc'),
        T.Object(
          {
            oid: str('snmpOid', 'Outlet-control OID; the outlet number is appended.'),
            on: T.Integer({ description: 'Value written for on.' }),
            off: T.Integer({ description: 'Value written for off.' }),
            cycle: T.Optional(T.Integer({ description: 'Value written for an outlet reboot, if the PDU has one (else off, wait, on).' })),
          },
          { additionalProperties: false },
        ),
      ],
      { description: `apc: APC PowerNet-MIB sPDUOutletCtl (.1.3.6.1.4.1.318.1.1.4.4.2.1.3.<outlet>: 1 on, 2 off, 3 reboot); or a generic OID with its values. Default ${POWER_DEFAULTS.pduScheme}.` },
      ),
    ),
    offSeconds: T.Optional(T.Integer({ description: `Cycle without an outlet reboot value: seconds between off and on (default ${POWER_DEFAULTS.offSeconds}).`, minimum: 1, maximum: 120 })),
  },
  { additionalProperties: false, description: 'A switched PDU outlet over SNMP.' },
);

export const PowerSsh = T.Object(
  { type: T.Literal('ssh') },
  { additionalProperties: false, description: 'ssh NODE systemctl reboot: reboot only, and only from a running OS.' },
);

export const PowerCommand = T.Object(
  {
    type: T.Literal('command'),
    on: T.Optional(T.Array(str('rebootWord', 'One argv element.'), { minItems: 1 })),
    off: T.Optional(T.Array(str('rebootWord', 'One argv element.'), { minItems: 1 })),
    cycle: T.Optional(T.Array(str('rebootWord', 'One argv element.'), { minItems: 1 })),
    status: T.Optional(
      T.Array(str('rebootWord', 'One argv element.'), { minItems: 1, description: 'Prints "on" or "off" (or exits 0 for on, 3 for off).' }),
    ),
  },
  { additionalProperties: false, description: 'Commands run on node0 (argv, never a shell); {name}, {mac}, {ip} are filled in.' },
);

export const PowerSpec = T.Union([PowerIpmi, PowerRedfish, PowerPdu, PowerSsh, PowerCommand], {
  description: 'How node0 powers this node on, off and around; default: the cluster-wide `power`, else ssh (reboot only).',
});
