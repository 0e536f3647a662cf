/**
 * Makes a bootstrapped tree generic: every node is reimaged from the same bytes, so nothing in it may
 * identify one machine (or the build host). The installer writes per-node identity afterwards.
 */
import { lstat, mkdir, readdir, rm, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';

async function lstatOrNull(path: string) {
  try {
    return await lstat(path);
  } catch {
    return null;
  }
}

/** Removes what is inside `dir` but keeps `dir` itself (services expect /var/log, /tmp to exist). */
async function emptyDir(root: string, rel: string, removed: string[], keep: (name: string) => boolean = () => false) {
  const dir = join(root, rel);
  const st = await lstatOrNull(dir);
  if (!st?.isDirectory()) return;
  for (const name of await readdir(dir)) {
    if (keep(name)) continue;
    await rm(join(dir, name), { recursive: true, force: true });
    removed.push(join(rel, name));
  }
}

/** Removes regular files (logs) below `rel`, keeping the directory layout and its ownership. */
async function removeFilesBelow(root: string, rel: string, removed: string[]) {
  const dir = join(root, rel);
  const st = await lstatOrNull(dir);
  if (!st?.isDirectory()) return;
  for (const ent of await readdir(dir, { withFileTypes: true })) {
    const child = join(rel, ent.name);
    if (ent.isDirectory()) await removeFilesBelow(root, child, removed);
    else {
      await rm(join(root, child), { force: true });
      removed.push(child);
    }
  }
}

async function removeIfPresent(root: string, rel: string, removed: string[]) {
  if (await lstatOrNull(join(root, rel))) {
    await rm(join(root, rel), { recursive: true, force: true });
    removed.push(rel);
  }
}

/**
 * Debian's ssh.service refuses to start without host keys and, unlike Arch's sshdgenkeys.service,
 * nothing regenerates them; with the keys stripped the image must make them on first start.
 */
const SSH_KEYGEN_DROPIN = `[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
`;

/** Strips per-node identity in place; returns the paths (relative to root) it removed or emptied. */
export async function makeGeneric(root: string): Promise<string[]> {
  const removed: string[] = [];

  // An empty (not absent) machine-id: systemd then generates one on first boot and treats it as such.
  const mid = join(root, 'etc/machine-id');
  if ((await lstatOrNull(join(root, 'etc')))?.isDirectory()) {
    await rm(mid, { force: true });
    await writeFile(mid, '');
    await chmod(mid, 0o444);
    removed.push('etc/machine-id');
  }
  const dbusMid = await lstatOrNull(join(root, 'var/lib/dbus/machine-id'));
  if (dbusMid?.isFile()) await removeIfPresent(root, 'var/lib/dbus/machine-id', removed);

  const sshDir = join(root, 'etc/ssh');
  if ((await lstatOrNull(sshDir))?.isDirectory()) {
    for (const name of await readdir(sshDir)) {
      if (name.startsWith('ssh_host_')) await removeIfPresent(root, join('etc/ssh', name), removed);
    }
  }
  const sshUnit = (await lstatOrNull(join(root, 'usr/lib/systemd/system/ssh.service'))) ?? (await lstatOrNull(join(root, 'lib/systemd/system/ssh.service')));
  if (sshUnit) {
    const dropin = join(root, 'etc/systemd/system/ssh.service.d');
    await mkdir(dropin, { recursive: true, mode: 0o755 });
    await writeFile(join(dropin, 'regenerate-host-keys.conf'), SSH_KEYGEN_DROPIN, { mode: 0o644 });
  }

  for (const rel of ['etc/hostname', 'var/lib/systemd/random-seed', 'var/lib/systemd/credential.secret']) {
    await removeIfPresent(root, rel, removed);
  }
  // The build host's resolver settings: per-node network config comes from the installer.
  if ((await lstatOrNull(join(root, 'etc/resolv.conf')))?.isFile()) await removeIfPresent(root, 'etc/resolv.conf', removed);

  await emptyDir(root, 'var/cache/apt/archives', removed, (n) => n === 'partial' || n === 'lock');
  await emptyDir(root, 'var/cache/apt', removed, (n) => n === 'archives');
  await emptyDir(root, 'var/lib/apt/lists', removed, (n) => n === 'partial' || n === 'lock');
  await emptyDir(root, 'var/cache/pacman/pkg', removed);
  await emptyDir(root, 'tmp', removed);
  await emptyDir(root, 'var/tmp', removed);
  await removeFilesBelow(root, 'var/log', removed);
  return removed;
}
