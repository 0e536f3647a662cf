import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { InstallerEnvArtifact } from '../build/plan/artifacts.ts';
import { installerBootEntry, type InstallerBootOptions } from '../build/render/installer-append.ts';
import { expectGolden } from './helpers/golden.ts';
import { loadSpec } from '../build/spec/load.ts';
import { planCluster } from '../build/plan/plan.ts';
import { renderSysrescuecfg } from '../build/render/sysrescuecfg.ts';

const legacy: InstallerEnvArtifact = {
  kind: 'sysrcd-legacy',
  version: '5.3.2',
  kernel: 'sysrcd-kernel',
  initrds: ['sysrcd-initram.igz'],
  files: ['pxe/sysrcd-kernel', 'pxe/sysrcd-initram.igz', 'sysrcd/sysrcd.dat', 'sysrcd/sysrcd.md5'],
};
const modern: InstallerEnvArtifact = {
  kind: 'sysrcd-modern',
  version: '12.00',
  kernel: 'sysrcd-vmlinuz',
  initrds: ['sysrcd-intel-ucode.img', 'sysrcd-amd-ucode.img', 'sysrcd-sysresccd.img'],
  files: [],
};
const builtin: InstallerEnvArtifact = { kind: 'builtin', version: 'bookworm', kernel: 'installer-kernel', initrds: ['installer-initramfs'], files: [] };

const base: InstallerBootOptions = { httpBase: 'http://192.168.10.10', keymap: 'us', profile: 'installer' };
const YAML_URL = 'http://192.168.10.10/rescue/sysrescue.yaml';

describe('installerBootEntry', () => {
  it('legacy: netboot of sysrcd.dat over HTTP, docache, dodhcp', () => {
    expect(installerBootEntry(legacy, { ...base, keymap: 'fr' })).toEqual({
      kernel: 'sysrcd-kernel',
      initrds: ['sysrcd-initram.igz'],
      append: 'docache dodhcp setkmap=fr netboot=http://192.168.10.10/sysrcd/sysrcd.dat ar_source=http://192.168.10.10/installer/ ar_nowait',
    });
    // Legacy has no firewall and no YAML: rescue differs only by its autorun directory.
    expect(installerBootEntry(legacy, { ...base, profile: 'rescue', sysrescuecfgUrl: YAML_URL }).append).toBe(
      'docache dodhcp setkmap=us netboot=http://192.168.10.10/sysrcd/sysrcd.dat ar_source=http://192.168.10.10/rescue/ ar_nowait',
    );
  });

  it('modern installer: archiso over HTTP with checksum, SYSAPPEND 3, microcode first', () => {
    expect(installerBootEntry(modern, base)).toEqual({
      kernel: 'sysrcd-vmlinuz',
      initrds: ['sysrcd-intel-ucode.img', 'sysrcd-amd-ucode.img', 'sysrcd-sysresccd.img'],
      append: 'archisobasedir=sysresccd ip=dhcp archiso_http_srv=http://192.168.10.10/sysrcd/ checksum setkmap=us ar_source=http://192.168.10.10/installer/ ar_nowait',
      sysappend: 3,
    });
  });

  it('modern rescue: nofirewall and sysrescuecfg=, and refuses to go without the YAML', () => {
    expect(installerBootEntry(modern, { ...base, profile: 'rescue', sysrescuecfgUrl: YAML_URL }).append).toBe(
      'archisobasedir=sysresccd ip=dhcp archiso_http_srv=http://192.168.10.10/sysrcd/ checksum setkmap=us ar_source=http://192.168.10.10/rescue/ ar_nowait ' +
        `nofirewall sysrescuecfg=${YAML_URL}`,
    );
    expect(() => installerBootEntry(modern, { ...base, profile: 'rescue' })).toThrow(/needs sysrescuecfgUrl/);
  });

  it('builtin: only the autorun contract, with BOOTIF', () => {
    expect(installerBootEntry(builtin, { ...base, profile: 'rescue' })).toEqual({
      kernel: 'installer-kernel',
      initrds: ['installer-initramfs'],
      append: 'ar_source=http://192.168.10.10/rescue/ ar_nowait ar_suffixes=',
      sysappend: 2,
    });
  });

  it('builtin in server DHCP mode: names the DHCP server whose lease the environment takes; SystemRescue and proxy mode get none', () => {
    expect(installerBootEntry(builtin, { ...base, dhcpServer: '192.168.10.10' }).append).toBe('ar_source=http://192.168.10.10/installer/ ar_nowait ar_suffixes= pc_dhcp_server=192.168.10.10');
    expect(installerBootEntry(builtin, base).append).not.toContain('pc_dhcp_server');
    expect(installerBootEntry(modern, { ...base, dhcpServer: '192.168.10.10' }).append).not.toContain('pc_dhcp_server');
    expect(() => installerBootEntry(builtin, { ...base, dhcpServer: '192.168.10.10 evil=1' })).toThrow(/dhcpServer must be one word/);
  });

  it('adds the serial console last, so it becomes /dev/console', () => {
    expect(installerBootEntry(builtin, { ...base, serialConsole: 'ttyS0,115200' }).append).toBe(
      'ar_source=http://192.168.10.10/installer/ ar_nowait ar_suffixes= console=tty0 console=ttyS0,115200',
    );
  });

  it('accepts a port and a trailing slash on httpBase without doubling the slash', () => {
    expect(installerBootEntry(modern, { ...base, httpBase: 'http://10.0.2.4:8080/' }).append).toContain(
      'archiso_http_srv=http://10.0.2.4:8080/sysrcd/ checksum setkmap=us ar_source=http://10.0.2.4:8080/installer/ ',
    );
  });

  it.each([
    ['keymap', { keymap: 'us ar_disable' }, /keymap must be one word/],
    ['keymap', { keymap: 'de"' }, /keymap must be one word/],
    ['serialConsole', { serialConsole: 'ttyS0,115200\nrootpass=x' }, /serialConsole must be one word/],
    ['httpBase', { httpBase: 'http://192.168.10.10/ x' }, /httpBase must be one word/],
    ['sysrescuecfgUrl', { profile: 'rescue' as const, sysrescuecfgUrl: "http://192.168.10.10/a'b.yaml" }, /sysrescuecfgUrl must be one word/],
  ])('refuses a %s that would break the command line: %j', (_what, bad, message) => {
    expect(() => installerBootEntry(modern, { ...base, ...bad })).toThrow(message);
  });

  it('refuses an environment whose file names are not one word', () => {
    expect(() => installerBootEntry({ ...builtin, initrds: ['a b'] }, base)).toThrow(/initrd must be one word/);
  });
});

const ED = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDi0F0d8m5Q3QmCwq1bQ0f0o8J3WwJ6p2k0t1nq8cN3a';
const RSA = 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7';

describe('renderSysrescuecfg', () => {
  it('renders authorized_keys keyed by comment, and nofirewall', () => {
    const text = renderSysrescuecfg({ authorizedKeys: [`${ED} alice@laptop`, RSA, `${RSA} alice@laptop`], nofirewall: true });
    expect(parse(text)).toEqual({
      global: { nofirewall: true },
      sysconfig: {
        authorized_keys: { 'alice@laptop': `${ED} alice@laptop`, 'key-2': RSA, 'alice@laptop (2)': `${RSA} alice@laptop` },
      },
    });
    expect(text).toMatch(/^# Generated by portacluster/);
  });

  it("the example's rescue/sysrescue.yaml matches its golden file", async () => {
    const { spec } = await loadSpec('examples/portacluster.config.ts');
    await expectGolden('example/rescue/sysrescue.yaml', renderSysrescuecfg({ authorizedKeys: planCluster(spec).rescue.sshKeys, nofirewall: true }));
  });

  it('takes an explicit comment → key map, and leaves the firewall alone unless asked', () => {
    expect(parse(renderSysrescuecfg({ authorizedKeys: { ops: ED } }))).toEqual({ sysconfig: { authorized_keys: { ops: ED } } });
  });

  it('refuses a key that would not stay one YAML line, and an empty key list', () => {
    expect(() => renderSysrescuecfg({ authorizedKeys: [`${ED}\nssh-rsa AAAA evil`] })).toThrow(/YAML: authorizedKeys\[0\] must be one line: it contains a newline/);
    expect(() => renderSysrescuecfg({ authorizedKeys: [] })).toThrow(/no authorized keys/);
  });
});
