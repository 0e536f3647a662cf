/**
 * The one owner of the spec's string forms. Each pattern is a regex plus the words a user sees when a
 * value does not match it: `label` finishes "not …" in `nodes[3].mac: not a MAC address (got "c0:3f")`,
 * `hint` says what to write instead. The schema puts the regex on its field (so ajv refuses the value
 * before anything else reads it), the rules reuse the same objects, and renderers take validated values
 * and only escape for their target (build/render/escape.ts).
 *
 * None of these admits a newline, a quote, a backslash, a space or a leading "-": a spec value can never
 * end a config line, split a command-line word or start an option.
 */
import { Type as T, type StringOptions } from '@sinclair/typebox';

export interface StringPattern {
  re: RegExp;
  maxLength: number;
  label: string;
  hint: string;
}

const p = (re: RegExp, maxLength: number, label: string, hint: string): StringPattern => ({ re, maxLength, label, hint });

const OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const HEX2 = '[0-9A-Fa-f]{2}';
const HEX4 = '[0-9A-Fa-f]{4}';
// A path segment that is never "." or "..": it may not start with a dot.
const SEGMENT = '[A-Za-z0-9_+@][A-Za-z0-9._+@-]*';

export const PATTERNS = {
  hostLabel: p(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 63, 'an RFC 1123 host name', 'lowercase letters, digits and inner hyphens, at most 63 characters'),
  domain: p(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/, 253, 'a DNS domain', 'host name labels joined by dots, e.g. cluster.example.org'),
  clusterName: p(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 63, 'a cluster name', 'letters, digits, ".", "_" and "-", starting with a letter or digit'),
  mac: p(new RegExp(`^(${HEX2}(:${HEX2}){5}|${HEX2}(-${HEX2}){5}|${HEX4}\\.${HEX4}\\.${HEX4}|[0-9A-Fa-f]{12})$`), 17, 'a MAC address', 'six hex pairs, e.g. c0:3f:d5:60:e5:a1'),
  ipv4: p(new RegExp(`^${OCTET}(\\.${OCTET}){3}$`), 15, 'an IPv4 address', 'a dotted quad, e.g. 192.168.10.11'),
  size: p(/^ *[0-9]+(\.[0-9]+)? *[KMGTkmgt]?([iI]?[bB])? *$/, 32, 'a size', 'bytes as an integer, or a number with K, M, G or T (binary units), e.g. 512M'),
  sizeOrRest: p(/^( *[0-9]+(\.[0-9]+)? *[KMGTkmgt]?([iI]?[bB])? *|rest)$/, 32, 'a size', 'bytes as an integer, or a number with K, M, G or T (binary units), e.g. 512M'),
  iface: p(/^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,14}$/, 15, 'an interface name', 'the name ip link shows, e.g. eno1 (at most 15 characters)'),
  leaseTime: p(/^([0-9]+[smhdw]?|infinite)$/, 16, 'a lease time', 'e.g. 1h, 30m, 12h or infinite'),
  httpBase: p(/^http:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?$/, 64, 'an http://IP[:port] base URL without a trailing slash', 'e.g. http://192.168.10.10 or http://192.168.10.10:8080'),
  absPath: p(new RegExp(`^/(${SEGMENT}(/${SEGMENT})*)?$`), 255, 'an absolute path of safe characters', 'e.g. /srv/public: letters, digits, ".", "_", "+", "@" and "-" between slashes, no "." or ".." parts, no trailing slash'),
  localPath: p(new RegExp(`^(/|\\./|(\\.\\./)+)?${SEGMENT}(/${SEGMENT})*$`), 1024, 'a file path of safe characters', 'e.g. /var/lib/iso/systemrescue.iso or ./rootfs: letters, digits, ".", "_", "+", "@" and "-" between slashes'),
  profile: p(/^[a-z0-9][a-z0-9._-]{0,62}$/, 63, 'a profile name', 'lowercase letters, digits, ".", "_" and "-", starting with a letter or digit, e.g. debian'),
  kernelWord: p(/^[A-Za-z0-9][A-Za-z0-9._+:@=,/-]*$/, 255, 'a single kernel command-line word', 'e.g. quiet or console=ttyS1,115200: no spaces, quotes or shell characters'),
  serial: p(/^tty[A-Za-z]+[0-9]+(,[0-9]+[noe]?[0-9]?)?$/, 32, 'a serial console', 'e.g. ttyS0,115200'),
  release: p(/^[a-z0-9][a-z0-9._-]{0,63}$/, 64, 'a release name', 'a Debian suite such as bookworm, or a label such as rolling'),
  packageName: p(/^[a-z0-9@_+][a-z0-9@._+-]{0,127}$/, 128, 'a package name', 'lowercase letters, digits and @._+-, e.g. openssh-server'),
  component: p(/^[a-z0-9][a-z0-9._-]{0,63}$/, 64, 'a Debian component', 'e.g. main, contrib, non-free-firmware'),
  archRepo: p(/^[a-z0-9][a-z0-9._-]{0,63}$/, 64, 'an Arch repository name', 'e.g. core or extra: lowercase letters, digits, ".", "_" and "-"'),
  mirror: p(/^(https?|file):\/\/[A-Za-z0-9._~:/@$+%=-]+$/, 1024, 'an http(s):// or file:// URL', 'e.g. http://deb.debian.org/debian, https://geo.mirror.pkgbuild.com/$repo/os/$arch or file:///srv/repo/$repo/os/$arch'),
  downloadUrl: p(/^https?:\/\/[A-Za-z0-9._~:/@$+%=?&,!-]+$/, 2048, 'an http(s) URL', 'e.g. https://fastly-cdn.system-rescue.org/releases/11.02/systemrescue-11.02-amd64.iso'),
  partLabel: p(/^[A-Za-z0-9_][A-Za-z0-9_-]{0,10}$/, 11, 'a label of 1–11 letters, digits, - or _', 'e.g. root or ESP; it may not start with "-"'),
  diskById: p(/^[A-Za-z0-9_:+@][A-Za-z0-9._:+@-]{0,254}$/, 255, 'a /dev/disk name', 'the name only, as listed by ls /dev/disk/by-id'),
  diskByPath: p(/^[A-Za-z0-9_:+@][A-Za-z0-9._:+@-]{0,254}$/, 255, 'a /dev/disk name', 'the name only, as listed by ls /dev/disk/by-path'),
  userName: p(/^[a-z_][a-z0-9_-]{0,31}$/, 32, 'a login name', 'lowercase, starts with a letter or _, at most 32 characters'),
  sshKey: p(
    /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\u0000-\u001f\u007f]*)?$/,
    16384,
    'an OpenSSH public key line',
    'one line: type, base64 blob, optional comment on the same line (e.g. the contents of ~/.ssh/id_ed25519.pub)',
  ),
  keymap: p(/^[A-Za-z0-9_][A-Za-z0-9._-]{0,31}$/, 32, 'a keymap name', 'e.g. us, de or fr-latin1'),
  sha256: p(/^[0-9a-fA-F]{64}$/, 64, '64 hex digits', 'the sha256 from the download page'),
  sha512: p(/^[0-9a-fA-F]{128}$/, 128, '128 hex digits', 'the sha512 from the download page'),
  rebootWord: p(/^[^\0\r\n]*$/, 1024, 'a command-line word without a newline or NUL', 'one argv element, e.g. ipmitool or {ip}'),
  // Power (nodes[].power): a BMC or PDU address may carry {name}, {mac}, {ip} so one cluster-wide default fits every node.
  bmcHost: p(/^([A-Za-z0-9]|\{(name|mac|ip)\})([A-Za-z0-9.-]|\{(name|mac|ip)\})*$/, 253, 'a host name or IPv4 address', 'e.g. 192.168.20.11, node3-ipmi or {name}-ipmi ({name}, {mac} and {ip} are filled in per node)'),
  bmcUser: p(/^[A-Za-z0-9_][A-Za-z0-9._@+-]{0,63}$/, 64, 'a BMC user name', 'letters, digits and ._@+-, not starting with "-", e.g. ADMIN'),
  envName: p(/^[A-Z_][A-Z0-9_]{0,127}$/, 128, 'an environment variable name', 'upper-case letters, digits and _, e.g. IPMI_PASSWORD'),
  redfishUrl: p(/^https?:\/\/([A-Za-z0-9.-]|\{(name|mac|ip)\})+(:[0-9]{1,5})?$/, 253, 'an https://host[:port] base URL without a path', 'e.g. https://10.0.0.21 or https://{name}-bmc:8443 (the service root /redfish/v1 is added)'),
  redfishId: p(/^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/, 64, 'a Redfish resource id', 'e.g. 1 or System.Embedded.1, as listed under /redfish/v1/Systems'),
  snmpOid: p(/^\.?[0-9]+(\.[0-9]+){1,63}$/, 255, 'a numeric SNMP OID', 'dotted numbers, e.g. .1.3.6.1.4.1.318.1.1.4.4.2.1.3 (the outlet number is appended)'),
  // ssh's destination argument: it never starts with "-" (ssh would read it as an option).
  sshTarget: p(/^([a-z_][a-z0-9_-]{0,31}@)?[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/, 286, 'an ssh destination', 'user@host or host, e.g. root@10.0.0.21 or deploy@rack1-boot'),
  schemaRef: p(/^[A-Za-z0-9._~:/#@+%=-]+$/, 1024, 'a JSON Schema reference', 'e.g. ./schema/portacluster.schema.json'),
} as const;

export type PatternName = keyof typeof PATTERNS;

/** Whether a value has the form; rules use it for values they build or re-check after normalizing. */
export function matches(name: PatternName, value: string): boolean {
  const pat = PATTERNS[name];
  return value.length <= pat.maxLength && pat.re.test(value);
}

/**
 * A string of one of the forms above, for the schema. `errorLabel` and `hint` are annotations ajv ignores
 * (strict: false); validate.ts reads them to word a mismatch like the rules do.
 */
export function str(form: PatternName, description: string, options: StringOptions = {}) {
  const pat = PATTERNS[form];
  return T.String({ ...options, description: `${description} Must be ${pat.label}: ${pat.hint}.`, pattern: pat.re.source, maxLength: pat.maxLength, errorLabel: pat.label, hint: pat.hint });
}
