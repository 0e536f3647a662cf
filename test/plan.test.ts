/**
 * The plan is the last word: planCluster resolves every default, and what comes after it (pipeline,
 * renderers, stages, image backends) applies none and re-validates nothing. Two halves: the plan of a
 * minimal spec has every field resolved, and a scan of the code after the plan finds no fallback literal
 * applied to a plan value; plus the one error type a renderer throws for a plan it cannot render.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PlanError, RenderError, StageError } from '../build/lib/errors.ts';
import { planCluster, type Plan } from '../build/plan/plan.ts';
import { validateSpec } from '../build/spec/validate.ts';
import { renderPxelinuxTree } from '../build/render/pxelinux.ts';
import { renderIpxeTree } from '../build/render/ipxe.ts';
import { disklessProfile } from '../build/render/diskless.ts';
import { installerBootEntry } from '../build/render/installer-append.ts';
import { installerVars } from '../build/render/autorun.ts';
import { shq } from '../build/render/shell.ts';
import { renderSysrescuecfg } from '../build/render/sysrescuecfg.ts';
import { baseSpec, KEY } from './fixtures/specs.ts';

const REPO = fileURLToPath(new URL('../', import.meta.url));

/**
 * Only what the schema and rules require, every default left to the schema and the planner; one appliance
 * and one user, so their elements' fields are walked too.
 */
function minimalSpec(): Record<string, any> {
  return {
    domain: 'pc.example.test',
    admin: { interface: 'eno1', ip: '192.168.10.10' },
    dhcp: { rangeStart: '192.168.10.130', rangeEnd: '192.168.10.180' },
    appliances: [{ name: 'switch', mac: 'c4:04:15:90:bf:b4' }],
    nodes: [{ name: 'node1', mac: 'c0:3f:d5:60:e5:a1' }],
    boot: { default: 'installer', os: {} },
    image: { name: 'debian', distro: 'debian', release: 'bookworm' },
    disk: { target: { onlyNonRemovable: true }, partitions: [{ size: 'rest', type: 'linux', mountpoint: '/' }] },
    users: [{ name: 'ops' }],
    rescue: { sshKeys: [KEY] },
    phoneHome: {},
    installerEnv: { type: 'builtin' },
  };
}

/** The same spec with every optional field given, in the same variants (debian, server DHCP, builtin). */
function fullSpec(): Record<string, any> {
  const s = minimalSpec();
  s.admin.httpBase = 'http://192.168.10.10:8080';
  s.dhcp.leaseTime = '12h';
  s.appliances = [{ name: 'switch', mac: 'c4:04:15:90:bf:b4', ip: '192.168.10.2' }];
  s.nodes[0] = { ...s.nodes[0], ip: '192.168.10.11', profile: 'os', loader: 'ipxe', reboot: ['ipmitool', '{ip}'] };
  s.boot.os = { name: 'debian', serialConsole: 'ttyS1,57600', kernelArgs: ['quiet'] };
  s.boot.diskless = true;
  s.image = { ...s.image, mirror: 'http://deb.debian.org/debian', components: ['main', 'contrib'], packages: ['curl'], rootfs: './rootfs' };
  s.disk.minSize = '8G';
  s.users = [{ name: 'ops', sshKeys: [KEY], sudo: true, shell: '/bin/zsh' }];
  s.installerEnv = { type: 'builtin', mirror: 'http://deb.debian.org/debian', suite: 'trixie' };
  return s;
}

const plan = (s: Record<string, any>): Plan => planCluster(validateSpec(s));

/** Every leaf's path (array elements as []) with its value. */
function leaves(value: unknown, path = '', out = new Map<string, unknown>()): Map<string, unknown> {
  if (Array.isArray(value)) {
    if (value.length === 0) out.set(path, value);
    value.forEach((v) => leaves(v, `${path}[]`, out));
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) leaves(v, path ? `${path}.${k}` : k, out);
  } else out.set(path, value);
  return out;
}

/** Fields the Plan type declares absent when the spec has none: no consumer defaults them. */
const ABSENT_BY_DESIGN = ['appliances[].ip', 'nodes[].ip', 'nodes[].power.cycle[]', 'os.serialConsole', 'image.rootfs', 'diskless.modules', 'profiles.diskless'];

describe('planCluster resolves every default', () => {
  it('the plan of a minimal spec has no undefined leaf, and lacks only the fields absent by design', () => {
    const min = leaves(plan(minimalSpec()));
    expect([...min].filter(([, v]) => v === undefined).map(([p]) => p)).toEqual([]);
    const full = leaves(plan(fullSpec()));
    expect([...full].filter(([, v]) => v === undefined).map(([p]) => p)).toEqual([]);
    // A new optional Plan field that some consumer must default shows up here.
    // A path counts as resolved when it or a parent is a leaf of the minimal plan (null, an empty list).
    const resolved = (p: string) => [...min.keys()].some((m) => p === m || p.startsWith(m + '.') || p.startsWith(m + '['));
    const missing = [...full.keys()].filter((p) => !resolved(p));
    expect(missing.sort()).toEqual([...ABSENT_BY_DESIGN].sort());
  });

  it('resolves the image, the installer environment and DHCP to concrete values', () => {
    const p = plan(minimalSpec());
    expect(p.image).toMatchObject({ distro: 'debian', mirror: null, components: ['main'], packages: [], zstdLevel: 3, installMode: 'tarball' });
    expect(p.installerEnv).toEqual({ type: 'builtin', mirror: null, suite: 'bookworm' });
    expect(p.dhcp).toEqual({ mode: 'server', rangeStart: '192.168.10.130', rangeEnd: '192.168.10.180', leaseTime: '1h' });
    expect(p.admin.httpBase).toBe('http://192.168.10.10');
    expect(p.boot.loaders).toEqual({ pxelinux: true, ipxe: false });
    expect(plan(fullSpec()).boot.loaders).toEqual({ pxelinux: true, ipxe: true });
    expect(p.os.pxelinuxSerial).toBeNull();
    expect(plan(fullSpec()).os.pxelinuxSerial).toEqual({ port: 1, speed: 57600 });
    const s = minimalSpec();
    s.boot.os.serialConsole = 'ttyS0';
    expect(plan(s).os.pxelinuxSerial).toEqual({ port: 0, speed: 115200 });
  });

  it('Arch: repos default to core and extra, and an empty list means the same', () => {
    const s = baseSpec();
    expect(plan(s).image).toMatchObject({ distro: 'arch', mirror: 'file:///srv/repo/$repo/os/$arch', repos: ['core', 'extra'] });
    s.image.repos = [];
    expect(plan(s).image).toMatchObject({ repos: ['core', 'extra'] });
    s.image.repos = ['pctest'];
    expect(plan(s).image).toMatchObject({ repos: ['pctest'] });
    const d = minimalSpec();
    d.image.components = [];
    expect(plan(d).image).toMatchObject({ components: ['main'] });
  });

  it('SystemRescue: one source, every digest (sha256 first) and the keymap', () => {
    const s = minimalSpec();
    s.installerEnv = { type: 'systemrescue', path: '/var/lib/iso/sr.iso', sha512: 'b'.repeat(128) };
    expect(plan(s).installerEnv).toEqual({ type: 'systemrescue', source: { path: '/var/lib/iso/sr.iso' }, digests: [{ algo: 'sha512', hex: 'b'.repeat(128) }], keymap: 'us' });
    s.installerEnv = { type: 'systemrescue', url: 'https://example.org/sr.iso', sha512: 'b'.repeat(128), sha256: 'a'.repeat(64), keymap: 'de' };
    expect(plan(s).installerEnv).toEqual({
      type: 'systemrescue',
      source: { url: 'https://example.org/sr.iso' },
      digests: [{ algo: 'sha256', hex: 'a'.repeat(64) }, { algo: 'sha512', hex: 'b'.repeat(128) }],
      keymap: 'de',
    });
  });
});

const AFTER_PLAN = ['build/pipeline.ts', 'build/render', 'build/stages', 'build/image', 'build/installer-env'];

function files(rel: string): string[] {
  const full = join(REPO, rel);
  if (!statSync(full).isDirectory()) return [rel];
  return readdirSync(full).sort().flatMap((n) => files(join(rel, n))).filter((f) => f.endsWith('.ts'));
}

/**
 * A default applied to a plan (or spec, options) value: `x.y ?? <literal>` / `x.y || <literal>` with a
 * non-empty string, a list, a number or a CONSTANT; or the list-or-default ternary `x?.length ? x : [...]`.
 * '' / 0 / null are how an absent value is written into a target (an empty bash word), not defaults.
 */
const FALLBACK = [
  /\b(?:plan|spec|image|env|o|opts|ctx|options)\.[\w.?!()[\]]*\s*(?:\?\?|\|\|)\s*(?:'[^']|"[^"]|`|\[|\d|[A-Z][A-Z0-9_]{2,}\b)/,
  /\?\.length\s*\?[^:]+:\s*\[/,
];

function fallbacks(text: string): string[] {
  return text.split('\n').filter((line) => !/^\s*(\/\/|\*|\/\*)/.test(line) && FALLBACK.some((re) => re.test(line)));
}

describe('nothing after the plan applies a default', () => {
  it('the scan finds the defaults this branch moved into planCluster (it can fail)', () => {
    const moved = [
      "      suite: env.suite ?? 'bookworm',",
      "      keymap: (plan.installerEnv.type === 'systemrescue' && plan.installerEnv.keymap) || 'us',",
      '  const level = opts.zstdLevel ?? DEFAULT_ZSTD_LEVEL;',
      "    components: spec.distro === 'debian' ? (spec.components?.length ? spec.components : ['main']) : undefined,",
      "  return spec.repos?.length ? spec.repos : ['core', 'extra'];",
      '    leaseTime: plan.dhcp.leaseTime ?? 3600,',
    ];
    expect(moved.filter((l) => fallbacks(l).length === 0)).toEqual([]);
    // An absent value written as an empty bash word is not a default.
    expect(fallbacks("    PC_SERIAL_CONSOLE: plan.os.serialConsole ?? '',")).toEqual([]);
  });

  it('pipeline, renderers, stages, image backends and the installer environment default no plan value', () => {
    const found = AFTER_PLAN.flatMap(files).flatMap((f) => fallbacks(readFileSync(join(REPO, f), 'utf8')).map((l) => `${f}: ${l.trim()}`));
    expect(found).toEqual([]);
  });
});

describe('one error for a plan that cannot be rendered', () => {
  const p = plan(minimalSpec());
  const builtin = { kind: 'builtin' as const, version: 'x', kernel: 'installer-kernel', initrds: ['installer-initramfs'], files: [] };
  const modern = { kind: 'sysrcd-modern' as const, version: '12.00', kernel: 'k', initrds: ['i'], files: [] };

  it.each<[string, () => unknown]>([
    ['a profile with no boot entry (pxelinux)', () => renderPxelinuxTree(p, {})],
    ['a profile with no boot entry (iPXE)', () => renderIpxeTree(p, {})],
    ['a diskless entry for a plan without diskless', () => disklessProfile(p, builtin)],
    ['SystemRescue with no keymap', () => installerBootEntry(modern, { httpBase: p.admin.httpBase, keymap: null, profile: 'installer' })],
    ['image mode without the filesystem image', () => installerVars({ ...p, image: { ...p.image, installMode: 'image' } }, { fileName: 'x', sha256: 'a'.repeat(64), size: 1 })],
    ['a NUL byte for bash', () => shq('a\0b')],
    ['a rescue YAML with no keys', () => renderSysrescuecfg({ authorizedKeys: [] })],
  ])('%s: PlanError (a StageError of render, so no stack trace)', (_what, render) => {
    let caught: unknown;
    try {
      render();
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(PlanError);
    expect(caught).toBeInstanceOf(StageError);
    expect((caught as Error).message).toMatch(/^render: /);
  });

  it('a value that would break out of its target is a RenderError, also a PlanError', () => {
    expect(() => installerBootEntry(builtin, { httpBase: 'http://10.0.0.1/ x', keymap: null, profile: 'installer' })).toThrow(RenderError);
    expect(new RenderError('t', 'w', 'v', 'r')).toBeInstanceOf(PlanError);
  });
});
