/**
 * The system errors a user meets in everyday use (no permission on the served tree, a port taken by
 * another watcher, a tree not built yet, a full disk), said in words with what to do next.
 */
import { dirname } from 'node:path';

interface ErrnoLike {
  code: string;
  path?: string;
  dest?: string;
  syscall?: string;
  address?: string;
  port?: number;
  message: string;
}

function errnoOf(e: unknown): ErrnoLike | null {
  if (!(e instanceof Error)) return null;
  const code = (e as NodeJS.ErrnoException).code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code) ? (e as unknown as ErrnoLike) : null;
}

/** One message with a hint for a known errno error; null for anything else. */
export function describeErrno(e: unknown): string | null {
  const err = errnoOf(e);
  if (!err) return null;
  // Making a link or renaming needs write permission on the directory that receives the new name.
  const inDir = err.dest && (err.syscall === 'symlink' || err.syscall === 'link' || err.syscall === 'rename');
  const path = inDir ? dirname(err.dest!) : (err.path ?? '');
  const on = path ? ` on ${path}` : '';
  const op = err.syscall ? ` (${err.syscall})` : '';
  switch (err.code) {
    case 'EACCES':
    case 'EPERM':
      if (err.syscall === 'listen' || err.syscall === 'bind') return `permission denied listening on ${err.address}:${err.port}${op}\n  hint: ports below 1024 need root; pick --listen ADDR:PORT with a higher port`;
      return `permission denied${on}${op}\n  hint: run as a user who owns it (or with sudo), or point --root/--state/--out/--cache at a directory you can write`;
    case 'EADDRINUSE':
      return `${err.address}:${err.port} is already in use${op}\n  hint: is another \`portacluster watch\` running (systemctl status, ss -ltnp)? stop it, or pick --listen ADDR:PORT`;
    case 'EADDRNOTAVAIL':
      return `${err.address} is not an address of this machine${op}\n  hint: pick --listen with one of this machine's addresses (ip -br addr), or 127.0.0.1 behind nginx`;
    case 'ENOENT':
      return `no such file or directory: ${path || err.message}${op}\n  hint: if this is the served tree, run \`portacluster build\` (then \`deploy\`) first, or name it with --root DIR`;
    case 'ENOTDIR':
      return `not a directory: ${path || err.message}${op}\n  hint: a path given as a directory (--root, --out, --cache) names a file`;
    case 'ENOSPC':
    case 'EDQUOT':
      return `no space left on device${on}${op}\n  hint: free space there (df -h ${path || '.'}), or use --out/--cache/--state on a larger filesystem`;
    case 'EROFS':
      return `read-only file system${on}${op}\n  hint: point --root/--state/--out/--cache at a writable filesystem`;
    default:
      return null;
  }
}
