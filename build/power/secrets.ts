/**
 * Reading a referenced secret (a BMC password, an SNMP community or passphrase), only inside a power call.
 * The value is returned to the driver, which hands it to its tool through the environment or a file
 * descriptor — never argv; every error here names the file or variable and what to do, never the value.
 */
import { open, stat } from 'node:fs/promises';
import { constants } from 'node:fs';
import { PowerError, type SpecIssue } from '../lib/errors.ts';
import type { SecretRef } from '../plan/plan.ts';

/** What is wrong with a secret file on this host, or null when it is usable (exists, regular, owner-only). */
export async function secretFileProblem(path: string): Promise<{ message: string; hint: string } | null> {
  const st = await stat(path).catch((e: NodeJS.ErrnoException) => e);
  if (st instanceof Error) {
    if (st.code === 'ENOENT') return { message: `${path} does not exist on this host`, hint: `create it on node0 with the secret on its first line, then chmod 600 ${path}` };
    return { message: `${path} cannot be read (${st.code ?? st.message})`, hint: 'run as the user that owns it (usually root on node0)' };
  }
  if (!st.isFile()) return { message: `${path} is not a regular file`, hint: 'point passwordFile at a file holding the secret on its first line' };
  // Group- or world-readable secrets are refused like ssh refuses an open private key.
  if ((st.mode & 0o077) !== 0)
    return { message: `${path} is readable by others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')})`, hint: `chmod 600 ${path}` };
  return null;
}

/** Where a reference points, for messages: "file /etc/pc/ipmi.pw" or "$IPMI_PASSWORD". */
export const describeRef = (ref: SecretRef): string => ('file' in ref ? `file ${ref.file}` : `$${ref.env}`);

/**
 * The secret's value: the first line of the file (without its newline), or the variable's value. `what`
 * words the error: "node3's BMC password". Refuses an open, missing or empty source.
 */
export async function readSecret(ref: SecretRef, what: string): Promise<string> {
  if ('env' in ref) {
    const v = process.env[ref.env];
    if (!v) throw new PowerError(`${what}: the environment variable ${ref.env} is ${v === undefined ? 'not set' : 'empty'}\n  hint: export ${ref.env} in the environment of the process that runs portacluster`);
    return v;
  }
  const problem = await secretFileProblem(ref.file);
  if (problem) throw new PowerError(`${what}: ${problem.message}\n  hint: ${problem.hint}`);
  // O_NOFOLLOW is not used: a symlink into /etc/credstore is a fair set-up; the mode check is on the target.
  const fh = await open(ref.file, constants.O_RDONLY);
  try {
    const text = (await fh.readFile('utf8')).split(/\r?\n/)[0] ?? '';
    if (!text) throw new PowerError(`${what}: the first line of ${ref.file} is empty\n  hint: write the secret on its first line`);
    return text;
  } finally {
    await fh.close();
  }
}

/** The host check of `portacluster validate`: each referenced file that is missing or open, at its spec path. */
export async function secretFileIssues(files: { path: string; file: string }[]): Promise<SpecIssue[]> {
  const issues: SpecIssue[] = [];
  for (const { path, file } of files) {
    const problem = await secretFileProblem(file);
    if (problem) issues.push({ path, ...problem });
  }
  return issues;
}
