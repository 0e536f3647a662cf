/**
 * Reads a secret named by the plan (a file on node0 or an environment variable) at call time, so it is
 * never part of the plan, dist/ or a log. Errors name the file or the variable, never the value.
 * (Small and self-contained on purpose: build/power/secrets.ts is the fuller reader these fold into.)
 */
import { open } from 'node:fs/promises';
import type { SecretRef } from '../plan/plan.ts';

export class SecretError extends Error {
  override name = 'SecretError';
}

/** Where a secret lives, for messages: "file /etc/pc/bmc.pw" or "environment variable BMC_PW". */
export function describeSecret(ref: SecretRef): string {
  return 'file' in ref ? `file ${ref.file}` : `environment variable ${ref.env}`;
}

export async function readSecret(ref: SecretRef): Promise<string> {
  if ('env' in ref) {
    const v = process.env[ref.env];
    if (v === undefined || v === '') throw new SecretError(`the environment variable ${ref.env} is not set or empty\n  hint: export ${ref.env} before running portacluster (it holds a secret the spec names)`);
    return v;
  }
  // Open first, then fstat the open file: the check and the read are about the same inode.
  const fh = await open(ref.file, 'r').catch((e: NodeJS.ErrnoException) => {
    throw new SecretError(`cannot open the secret file ${ref.file}: ${e.code ?? e.message}\n  hint: create it (mode 0600) or fix the path in the spec`);
  });
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new SecretError(`the secret file ${ref.file} is not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      throw new SecretError(`the secret file ${ref.file} is readable by others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')})\n  hint: chmod 600 ${ref.file}`);
    }
    const first = (await fh.readFile('utf8')).split(/\r?\n/, 1)[0] ?? '';
    if (first === '') throw new SecretError(`the secret file ${ref.file} is empty (the secret is its first line)`);
    return first;
  } finally {
    await fh.close();
  }
}
