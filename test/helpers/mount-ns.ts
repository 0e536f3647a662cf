/**
 * Several "machines" on one host, each seeing its own disk at the same path: a process started through
 * inMountNs runs in a mount namespace of its own in which each `src` is bind-mounted over its `dst`. The
 * boot-server tests give each server's sshd, nginx and dnsmasq the spec's servedRoot this way.
 */

/**
 * argv that runs `argv` with the binds in place. unshare execs sh, which execs `argv`: the child's PID stays
 * the program's own, so stopping the child stops it. The mounts vanish with the namespace's last process.
 */
export function inMountNs(binds: readonly { src: string; dst: string }[], argv: readonly string[]): string[] {
  const script = 'while [ "$1" != -- ]; do mount --bind -- "$1" "$2" || exit 1; shift 2; done; shift; exec "$@"';
  return ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', ...binds.flatMap((b) => [b.src, b.dst]), '--', ...argv];
}
