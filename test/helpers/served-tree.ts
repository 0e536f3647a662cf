/**
 * A small served tree as the build makes it (pxelinux.cfg and ipxe profiles, per-node links, an image,
 * SHA256SUMS + manifest.json), written here so the lifecycle tests do not need a full build.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { bootServerView } from '../../build/plan/boot-server-view.ts';
import { renderBootFiles } from '../../build/render/boot-files.ts';
import { bootServerSite, renderBootServerNginxConf } from '../../build/render/nginx-bootserver.ts';
import { dirname, join } from 'node:path';
import { planCluster, type Plan } from '../../build/plan/plan.ts';
import { validateSpec } from '../../build/spec/validate.ts';
import { checksumTree } from '../../build/stages/checksum-tree.ts';
import { baseSpec } from '../fixtures/specs.ts';
import { bootServerPath, SERVED_SPEC, autorunPath, DEFAULT_LINK, imagePath, IPXE_DEFAULT_LINK, IPXE_DIR, ipxeNodeFile, ipxePath, ipxeProfileFile, LOADER_FILES, NGINX_CONF, PXELINUX_DIR, pxelinuxPath, pxePath } from '../../build/layout.ts';

/** A spec with `count` nodes (node1…), written as JSON; returns the file and its plan. */
export async function writeSpec(dir: string, o: { count?: number; watcherPort?: number; reboot?: (name: string) => string[]; diskless?: boolean } = {}): Promise<{ file: string; plan: Plan }> {
  const spec = baseSpec();
  const count = o.count ?? 3;
  spec.nodes = Array.from({ length: count }, (_, i) => ({
    name: `node${i + 1}`,
    // Two bytes of index: up to 65535 nodes (node1…node255 keep their c0:3f:d5:60:00:xx).
    mac: `c0:3f:d5:60:${((i + 1) >> 8).toString(16).padStart(2, '0')}:${((i + 1) & 0xff).toString(16).padStart(2, '0')}`,
    firmware: 'bios',
    ...(o.reboot ? { reboot: o.reboot(`node${i + 1}`) } : {}),
  }));
  if (o.watcherPort) spec.phoneHome = { watcherPort: o.watcherPort };
  if (o.diskless) spec.boot.diskless = true;
  const file = join(dir, 'spec.json');
  await writeFile(file, JSON.stringify(spec, null, 2));
  return { file, plan: planCluster(validateSpec(spec, file)) };
}

async function put(root: string, path: string, data: string | Buffer) {
  await mkdir(dirname(join(root, path)), { recursive: true });
  await writeFile(join(root, path), data);
}

/** Writes the tree; `imageBytes` sizes images/os.tar.zst (random, so rsync cannot compress it away). */
export async function writeServedTree(root: string, plan: Plan, o: { imageBytes?: number; version?: string } = {}): Promise<void> {
  const version = o.version ?? 'v1';
  await put(root, pxePath(LOADER_FILES.pxelinux), 'pxelinux\n');
  for (const p of plan.profiles.all) {
    await put(root, pxelinuxPath(p), `# profile ${p} ${version}\nDEFAULT ${p}\n`);
    await put(root, ipxePath(ipxeProfileFile(p)), `#!ipxe\n# profile ${p} ${version}\n`);
  }
  await symlink(plan.profiles.default, join(root, pxelinuxPath(DEFAULT_LINK)));
  await symlink(ipxeProfileFile(plan.profiles.default), join(root, ipxePath(IPXE_DEFAULT_LINK)));
  for (const n of plan.nodes) {
    await symlink(n.profile, join(root, PXELINUX_DIR, n.pxeFile));
    await symlink(ipxeProfileFile(n.profile), join(root, IPXE_DIR, ipxeNodeFile(n.mac)));
  }
  await put(root, autorunPath('installer'), `#!/bin/bash\necho installer ${version}\n`);
  await put(root, imagePath('os.tar.zst'), o.imageBytes ? randomBytes(o.imageBytes) : `image ${version}\n`);
  await put(root, NGINX_CONF, `# ${version}\n`);
  await checksumTree(root, { portacluster: '1', specHash: plan.specHash, sourceDateEpoch: 0, tools: {}, artifacts: { version } });
}

/** A built tree as the build lays it out with boot servers: node0's files, each server's own tree, the spec. */
export async function writeBootServerDist(dir: string, plan: Plan, spec: unknown, version: string): Promise<void> {
  await writeServedTree(dir, plan, { version });
  await writeFile(join(dir, pxePath('installer-kernel')), `kernel ${version}\n`);
  const arts = { env: { kind: 'builtin' as const, version, kernel: 'installer-kernel', initrds: ['installer-initramfs'], files: [] }, image: { fileName: `os-${version}.tar.zst`, sha256: 'ab'.repeat(32), size: 1 } };
  for (const b of plan.bootServers) {
    const files = await renderBootFiles(bootServerView(plan, b), arts, { server: b.name });
    for (const [p, f] of Object.entries(files.files)) {
      await mkdir(join(dir, bootServerPath(b.name, p), '..'), { recursive: true });
      await writeFile(join(dir, bootServerPath(b.name, p)), f.text, { mode: f.mode });
    }
    for (const [p, t] of Object.entries(files.links)) await symlink(t, join(dir, bootServerPath(b.name, p)));
    await mkdir(join(dir, bootServerPath(b.name, NGINX_CONF), '..'), { recursive: true });
    await writeFile(join(dir, bootServerPath(b.name, NGINX_CONF)), renderBootServerNginxConf(plan, bootServerSite(plan, b)));
  }
  await writeFile(join(dir, SERVED_SPEC), JSON.stringify(spec));
  await checksumTree(dir, { portacluster: '1', specHash: plan.specHash, sourceDateEpoch: 0, tools: {}, artifacts: { version } });
}
