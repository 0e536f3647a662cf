/**
 * Where a lifecycle operation runs: this machine, or node0 over ssh. Operations that touch the served tree
 * are written once as a POSIX sh script (every value through shq()) and run with `sh -c` here or with one
 * `ssh HOST sh -c …` call there, so the local and the remote path are the same code.
 */
import { shq } from '../render/shell.ts';
import { run, type RunResult } from '../lib/run.ts';

export interface Target {
  /** ssh destination (user@host or a Host alias); absent = this machine. */
  host?: string;
  /** ssh -F file, for a non-default ssh configuration (tests, jump hosts). */
  sshConfig?: string;
}

/** The ssh argv prefix for a target, also used as rsync's -e. */
export function sshCommand(t: Target): string[] {
  // BatchMode: never stop to ask for a password in the middle of a switch or a deploy.
  return ['ssh', ...(t.sshConfig ? ['-F', t.sshConfig] : []), '-o', 'BatchMode=yes'];
}

/** Runs a sh script on the target; values in the script must already be quoted with shq(). */
export async function runScript(t: Target, script: string, o: { nothrow?: boolean; timeoutMs?: number } = {}): Promise<RunResult> {
  if (!t.host) return run(['sh', '-c', script], o);
  // ssh joins its arguments into one string for the remote login shell: pass exactly one, pre-quoted.
  return run([...sshCommand(t), '--', t.host, `sh -c ${shq(script)}`], o);
}

/** Runs an argv on the target (the reboot commands, when node0 is remote). */
export async function runArgv(t: Target, argv: string[], o: { nothrow?: boolean; timeoutMs?: number } = {}): Promise<RunResult> {
  if (!t.host) return run(argv, o);
  return run([...sshCommand(t), '--', t.host, argv.map(shq).join(' ')], o);
}

/** `host:/path` → remote, anything else → local (a path with a colon before its first slash is remote, as for rsync). */
export function parseDest(dest: string): { host?: string; path: string } {
  const m = /^([^/:]+):(.+)$/.exec(dest);
  return m ? { host: m[1]!, path: m[2]! } : { path: dest };
}
