import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSpec } from '../build/spec/load.ts';
import { planCluster, type Plan } from '../build/plan/plan.ts';
import { validateSpec } from '../build/spec/validate.ts';
import { renderDnsmasqConf } from '../build/render/dnsmasq.ts';
import { renderNginxConf } from '../build/render/nginx.ts';
import { osProfile, renderPxelinuxConfig, renderPxelinuxTree, type PxeProfile } from '../build/render/pxelinux.ts';
import { renderIpxeProfile, renderIpxeTree } from '../build/render/ipxe.ts';
import { disklessProfile } from '../build/render/diskless.ts';
import type { InstallerEnvArtifact } from '../build/plan/artifacts.ts';
import { run } from '../build/lib/run.ts';
import { writeFile } from 'node:fs/promises';
import { expectGolden } from './helpers/golden.ts';
import { adaptNginxConf } from './helpers/nginx.ts';
import { workspace } from './helpers/workspace.ts';
import { baseSpec } from './fixtures/specs.ts';

let plan: Plan;
let ws: Awaited<ReturnType<typeof workspace>>;
const installerEntry = (label: 'installer' | 'rescue'): PxeProfile => ({
  label,
  kernel: 'installer-kernel',
  initrds: ['installer-initramfs'],
  append: `ar_source=http://192.168.10.10/${label}/ ar_nowait console=ttyS0,115200`,
  sysappend: 2,
});

beforeAll(async () => {
  plan = planCluster((await loadSpec('examples/portacluster.config.ts')).spec);
  ws = await workspace();
});
afterAll(() => ws.cleanup());

describe('pxelinux.cfg', () => {
  it('renders each profile and links every node and default (golden)', async () => {
    const tree = renderPxelinuxTree(plan, { installer: installerEntry('installer'), rescue: installerEntry('rescue'), debian: osProfile(plan) });
    expect(Object.keys(tree.files).sort()).toEqual(['debian', 'installer', 'rescue']);
    expect(tree.links).toEqual({
      default: 'installer',
      '01-c0-3f-d5-60-e5-a1': 'installer',
      '01-c0-3f-d5-60-cd-8b': 'installer',
      '01-c0-3f-d5-60-e5-b9': 'installer',
      '01-c0-3f-d5-60-e4-ac': 'installer',
      '01-c0-3f-d5-60-6f-18': 'installer',
      '01-c0-3f-d5-60-d0-9e': 'installer',
    });
    for (const [name, text] of Object.entries(tree.files)) await expectGolden(`example/pxe/pxelinux.cfg/${name}`, text);
  });

  it('boots the OS with root= the root label from the plan, not a device name', () => {
    expect(renderPxelinuxConfig(osProfile(plan), { timeout: 10, serial: plan.os.pxelinuxSerial })).toContain('APPEND root=LABEL=root rw console=tty0 console=ttyS0,115200\n');
  });

  it('a disk-booting OS profile hands over to the local disk', () => {
    const spec = baseSpec();
    spec.boot.os.bootFrom = 'disk';
    spec.disk.partitions.unshift({ size: '1M', type: 'bios_grub' });
    const p = planCluster(validateSpec(spec));
    expect(renderPxelinuxConfig(osProfile(p), { timeout: 10, serial: null })).toMatch(/LABEL arch-linux\n\s+LOCALBOOT 0\n$/);
  });

  it('refuses a kernel command line with a newline', () => {
    expect(() => renderPxelinuxConfig({ label: 'x', kernel: 'k', initrds: [], append: 'a\nLABEL evil' }, { timeout: 1, serial: null })).toThrow(/newline/);
  });
});

describe('dnsmasq.conf', () => {
  it('matches the golden file', async () => {
    await expectGolden('example/etc/dnsmasq.conf', renderDnsmasqConf(plan));
  });

  it('binds the cluster interface and branches on client-arch (the example boots iPXE)', () => {
    const conf = renderDnsmasqConf(plan);
    for (const line of ['interface=eno1', 'bind-interfaces', 'enable-tftp', 'tftp-root=/srv/public/pxe', 'dhcp-range=192.168.10.130,192.168.10.180,255.255.255.0,1h', 'dhcp-boot=tag:ipxe,http://192.168.10.10/pxe/ipxe/boot.ipxe', 'dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe', 'dhcp-boot=tag:!ipxe,tag:efi64,snponly.efi', 'dhcp-match=set:efi64,option:client-arch,7', 'dhcp-option=tag:ipxe,encap:175,176,1', 'dhcp-host=c4:04:15:90:bf:b4,switch', 'dhcp-host=c0:3f:d5:60:e5:a1,node1,192.168.10.11'])
      expect(conf.split('\n')).toContain(line);
  });

  it('a pxelinux cluster: BIOS clients get pxelinux.0, x86-64 UEFI clients syslinux.efi', () => {
    const spec = baseSpec();
    const conf = renderDnsmasqConf(planCluster(validateSpec(spec)));
    for (const line of ['dhcp-boot=tag:!efi64,pxelinux.0', 'dhcp-boot=tag:efi64,syslinux.efi', 'dhcp-match=set:efi64,option:client-arch,7', 'dhcp-match=set:efi64,option:client-arch,9'])
      expect(conf.split('\n')).toContain(line);
    expect(conf).not.toContain('undionly.kpxe');
  });

  it('passes dnsmasq --test', async () => {
    const file = join(ws.dir, 'dnsmasq.conf');
    await writeFile(file, renderDnsmasqConf(plan));
    const r = await run(['dnsmasq', '--test', `--conf-file=${file}`]);
    expect(r.stderr + r.stdout).toMatch(/syntax check OK/);
  });

  it('dnsmasq --test catches a broken config (the check can fail)', async () => {
    const file = join(ws.dir, 'broken.conf');
    await writeFile(file, renderDnsmasqConf(plan) + 'dhcp-rnage=192.168.10.1,192.168.10.2\n');
    await expect(run(['dnsmasq', '--test', `--conf-file=${file}`])).rejects.toThrow(/exited with code/);
  });
});

describe('nginx.conf', () => {
  it('matches the golden file', async () => {
    await expectGolden('example/etc/nginx.conf', renderNginxConf(plan));
  });

  it('passes nginx -t with its own prefix', async () => {
    const prefix = join(ws.dir, 'nginx');
    const conf = await adaptNginxConf(renderNginxConf(plan), { prefix, listen: '127.0.0.1:18080', root: ws.dir });
    const r = await run(['nginx', '-t', '-p', prefix, '-c', conf]);
    expect(r.stderr).toMatch(/test is successful/);
  });

  it('serves the tree root with autoindex, keepalive 0, and proxies reports to the watcher', () => {
    const conf = renderNginxConf(plan);
    expect(conf).toContain('root /srv/public;');
    expect(conf).toContain('keepalive_timeout 0;');
    expect(conf).toContain('autoindex on;');
    expect(conf).toContain('listen 192.168.10.10:80 default_server;');
    expect(conf).toMatch(/location \/portacluster\/report\/ \{\n\s+proxy_pass http:\/\/127\.0\.0\.1:8077;/);
  });
});

describe('iPXE', () => {
  function mixedPlan() {
    const spec = baseSpec();
    spec.boot.loader = 'ipxe';
    spec.nodes[0].loader = 'pxelinux';
    return planCluster(validateSpec(spec));
  }

  it('renders profile scripts, the entry script and per-MAC links from the same profiles (golden)', async () => {
    const p = mixedPlan();
    const tree = renderIpxeTree(p, { installer: installerEntry('installer'), rescue: installerEntry('rescue'), 'arch-linux': osProfile(p) });
    expect(tree.links).toEqual({ 'default.ipxe': 'installer.ipxe', '01-c0-3f-d5-60-e5-a1.ipxe': 'installer.ipxe', '01-c0-3f-d5-60-cd-8b.ipxe': 'arch-linux.ipxe' });
    for (const [name, text] of Object.entries(tree.files)) await expectGolden(`mixed/pxe/ipxe/${name}`, text);
    expect(tree.files['installer.ipxe']).toBe(
      '#!ipxe\n# portacluster: profile installer — generated; do not edit\n' +
        'kernel http://192.168.10.10/pxe/installer-kernel initrd=installer-initramfs ar_source=http://192.168.10.10/installer/ ar_nowait console=ttyS0,115200 BOOTIF=01-${netX/mac:hexhyp}\n' +
        'initrd http://192.168.10.10/pxe/installer-initramfs\nboot\n',
    );
  });

  it('a disk-booting OS profile exits iPXE to the next boot device', () => {
    expect(renderIpxeProfile({ label: 'os', localboot: true }, { httpBase: 'http://10.0.0.1' })).toBe('#!ipxe\n# portacluster: profile os — generated; do not edit\nexit\n');
  });

  it('dnsmasq hands iPXE clients the HTTP script, chainloads iPXE for other firmware, keeps pxelinux nodes on pxelinux', async () => {
    const conf = renderDnsmasqConf(mixedPlan());
    await expectGolden('mixed/etc/dnsmasq.conf', conf);
    const lines = conf.split('\n');
    expect(lines).toContain('dhcp-host=c0:3f:d5:60:e5:a1,set:pxelinux,node1,192.168.10.11');
    expect(lines).toContain('dhcp-boot=tag:pxelinux,tag:!efi64,pxelinux.0');
    expect(lines).toContain('dhcp-boot=tag:!pxelinux,tag:ipxe,http://192.168.10.10/pxe/ipxe/boot.ipxe');
    expect(lines).toContain('dhcp-boot=tag:!pxelinux,tag:!ipxe,tag:efi64,snponly.efi');
    const file = join(ws.dir, 'mixed.conf');
    await writeFile(file, conf);
    const r = await run(['dnsmasq', '--test', `--conf-file=${file}`]);
    expect(r.stderr + r.stdout).toMatch(/syntax check OK/);
  });
});

describe('diskless profile', () => {
  const builtin: InstallerEnvArtifact = { kind: 'builtin', version: '6.1.0-28-amd64', kernel: 'installer-kernel', initrds: ['installer-initramfs'], files: [] };
  function disklessPlan() {
    const spec = baseSpec();
    spec.boot.diskless = true;
    spec.boot.os.serialConsole = 'ttyS0,115200';
    spec.nodes[1].profile = 'diskless';
    return planCluster(validateSpec(spec));
  }

  it('boots the golden kernel with the environment initramfs and the golden modules, for pxelinux and iPXE (golden)', async () => {
    const p = disklessPlan();
    const profiles = { installer: installerEntry('installer'), rescue: installerEntry('rescue'), 'arch-linux': osProfile(p), diskless: disklessProfile(p, builtin) };
    const pxe = renderPxelinuxTree(p, profiles);
    const ipxe = renderIpxeTree(p, profiles);
    expect(pxe.links['01-c0-3f-d5-60-cd-8b']).toBe('diskless');
    expect(ipxe.links['01-c0-3f-d5-60-cd-8b.ipxe']).toBe('diskless.ipxe');
    await expectGolden('diskless/pxe/pxelinux.cfg/diskless', pxe.files.diskless!);
    await expectGolden('diskless/pxe/ipxe/diskless.ipxe', ipxe.files['diskless.ipxe']!);
  });

  it("passes the OS profile's kernel arguments: the same OS runs", () => {
    const spec = baseSpec();
    spec.boot.diskless = true;
    spec.boot.os.kernelArgs = ['quiet', 'net.ifnames=0'];
    const entry = disklessProfile(planCluster(validateSpec(spec)), builtin);
    expect('append' in entry && entry.append).toBe('ar_source=http://192.168.10.10/diskless/ ar_nowait ar_suffixes= pc_dhcp_server=192.168.10.10 quiet net.ifnames=0');
  });

  it('needs the built-in environment and boot.diskless', () => {
    expect(() => disklessProfile(disklessPlan(), { ...builtin, kind: 'sysrcd-modern' })).toThrow(/built-in installer environment/);
    expect(() => disklessProfile(plan, builtin)).toThrow(/boot.diskless is off/);
  });
});
