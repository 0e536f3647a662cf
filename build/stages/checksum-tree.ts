/**
 * SHA256SUMS and manifest.json over a tree. Files are hashed by streaming, several at once (p-limit);
 * symlinks (the per-node profile links, which change on node0) are recorded in the manifest, not summed.
 */
import { lstat, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import pLimit from 'p-limit';
import { StageError } from '../lib/errors.ts';
import { IMAGES_DIR, MANIFEST_FILE, RUNS_DIR, SUMS_FILE } from '../layout.ts';
import { sha256File, sha256Text } from '../lib/hash.ts';

export interface TreeFile {
  path: string;
  size: number;
  sha256: string;
}

export interface TreeLink {
  path: string;
  target: string;
}

export interface TreeListing {
  files: TreeFile[];
  links: TreeLink[];
}


async function walk(root: string, dir = root, out: { files: string[]; links: string[] } = { files: [], links: [] }) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isSymbolicLink()) out.links.push(full);
    else if (entry.isDirectory()) await walk(root, full, out);
    else if (entry.isFile()) out.files.push(full);
  }
  return out;
}

const byPath = (a: { path: string }, b: { path: string }) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);

/** Lists and hashes a tree, leaving out the top-level SHA256SUMS and manifest.json. */
export async function listTree(root: string, concurrency = 4): Promise<TreeListing> {
  const { files, links } = await walk(root);
  const limit = pLimit(concurrency);
  const skip = new Set([SUMS_FILE, MANIFEST_FILE]);
  const hashed = await Promise.all(
    files
      .map((f) => relative(root, f))
      .filter((p) => !skip.has(p))
      .map((p) =>
        limit(async () => {
          const full = join(root, p);
          return { path: p, size: (await lstat(full)).size, sha256: await sha256File(full) };
        }),
      ),
  );
  const linkList = await Promise.all(links.map(async (l) => ({ path: relative(root, l), target: await readlink(l) })));
  return { files: hashed.sort(byPath), links: linkList.sort(byPath) };
}

export function renderSums(files: TreeFile[]): string {
  return files.map((f) => `${f.sha256}  ${f.path}`).join('\n') + '\n';
}

export interface Manifest {
  portacluster: string;
  specHash: string;
  sourceDateEpoch: number;
  tools: Record<string, string>;
  artifacts: Record<string, unknown>;
  files: TreeFile[];
  links: TreeLink[];
}

/** Writes manifest.json, then SHA256SUMS over every file including the manifest. */
export async function checksumTree(root: string, meta: Omit<Manifest, 'files' | 'links'>): Promise<Manifest> {
  const listing = await listTree(root);
  const manifest: Manifest = { ...meta, files: listing.files, links: listing.links };
  const manifestText = JSON.stringify(manifest, null, 2) + '\n';
  await writeFile(join(root, MANIFEST_FILE), manifestText);
  const manifestEntry = { path: MANIFEST_FILE, size: Buffer.byteLength(manifestText), sha256: sha256Text(manifestText) };
  await writeFile(join(root, SUMS_FILE), renderSums([...listing.files, manifestEntry].sort(byPath)));
  return manifest;
}

export interface VerifyResult {
  ok: boolean;
  checked: number;
  problems: { path: string; problem: string }[];
  /** Images carried over from the previous release by a deploy, each matching its own .sha256. */
  carried: string[];
}

/** Re-checks a tree against its SHA256SUMS: every listed file present and matching, no unlisted files. */
export async function verifyTree(root: string): Promise<VerifyResult> {
  let sums: string;
  try {
    sums = await readFile(join(root, SUMS_FILE), 'utf8');
  } catch {
    throw new StageError('verify', `${join(root, SUMS_FILE)} not found: is ${root} a portacluster tree?`);
  }
  const expected = new Map<string, string>();
  for (const [i, line] of sums.split('\n').entries()) {
    if (!line) continue;
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (!m) throw new StageError('verify', `${SUMS_FILE} line ${i + 1} is not "<sha256>  <path>": ${JSON.stringify(line)}`);
    expected.set(m[2]!, m[1]!);
  }
  const listing = await listTree(root);
  const actual = new Map(listing.files.map((f) => [f.path, f.sha256]));
  const problems: VerifyResult['problems'] = [];
  for (const [path, digest] of expected) {
    if (path === MANIFEST_FILE) {
      const got = await sha256File(join(root, MANIFEST_FILE)).catch(() => null);
      if (got !== digest) problems.push({ path, problem: got ? 'checksum mismatch' : 'missing' });
      continue;
    }
    const got = actual.get(path);
    if (got === undefined) problems.push({ path, problem: 'missing' });
    else if (got !== digest) problems.push({ path, problem: 'checksum mismatch' });
  }
  const carried: string[] = [];
  for (const path of actual.keys()) {
    if (expected.has(path)) continue;
    // The nodes' run files are node0's live state (written by reimage, carried by deploy), like the per-MAC links.
    if (path.startsWith(`${RUNS_DIR}/`)) continue;
    if (await carriedImage(root, path, actual)) carried.push(path);
    else problems.push({ path, problem: 'not listed in SHA256SUMS' });
  }
  return { ok: problems.length === 0, checked: expected.size, problems: problems.sort(byPath), carried: carried.sort() };
}

/**
 * An image a deploy carried over from the previous release for nodes still installing from it: not in
 * SHA256SUMS, but checked against its own `.sha256` sidecar (both carried together).
 */
async function carriedImage(root: string, path: string, actual: Map<string, string>): Promise<boolean> {
  if (!path.startsWith(`${IMAGES_DIR}/`)) return false;
  const image = path.endsWith('.sha256') ? path.slice(0, -'.sha256'.length) : path;
  const sidecar = await readFile(join(root, `${image}.sha256`), 'utf8').catch(() => null);
  const m = sidecar && /^([0-9a-f]{64}) [ *](.+)\n?$/.exec(sidecar);
  return !!m && m[2] === image.slice(IMAGES_DIR.length + 1) && actual.get(image) === m[1];
}
