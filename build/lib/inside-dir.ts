/**
 * Paths built from spec values (image.name, boot.os.name, node MACs…) must land inside the directory they
 * belong to: a name with "../" wrote a 211 MB tarball outside --out. The schema already refuses such
 * names; this is the check at the place a file is written, so no caller can skip it.
 */
import { isAbsolute, relative, resolve } from 'node:path';
import { PathEscapeError } from './errors.ts';

/** root joined with rel, refused (PathEscapeError from `stage`) unless it is strictly inside root. */
export function insideDir(root: string, rel: string, stage = 'build'): string {
  if (rel.includes('\0')) throw new PathEscapeError(stage, `a file name cannot contain a NUL byte (got ${JSON.stringify(rel)})`);
  const base = resolve(root);
  const full = resolve(base, rel);
  const up = relative(base, full);
  if (up === '' || up === '..' || up.startsWith('../') || isAbsolute(up))
    throw new PathEscapeError(stage, `${JSON.stringify(rel)} would not be inside ${base} (it resolves to ${full})`);
  return full;
}
