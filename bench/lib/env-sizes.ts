/**
 * What each part of the built-in installer environment costs: the initramfs unpacked into a scratch root
 * (the root as a node sees it, after every cut), then bytes per Debian package (the files of its dpkg list
 * still present), per kernel module directory, and per kind of file that is nobody's business in a
 * RAM-only installer (docs, man pages, locales, firmware). Every file is counted once (by inode), so the
 * package rows plus "(no package)" add up to the whole root.
 */
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../build/lib/run.ts';

export interface SizeRow {
  name: string;
  bytes: number;
  /** Files counted in the row. */
  files: number;
}

export interface EnvSizes {
  total: number;
  packages: SizeRow[];
  /** `kernel/<dir>/<dir>` subtrees of the one modules directory. */
  modules: SizeRow[];
  /** Docs, man pages, locales, firmware, udev's hwdb sources: expected near zero. */
  leftovers: SizeRow[];
}

/** Unpacks a zstd (or any compressor zstd -d reads) newc cpio into `dir`, which must exist and be empty. */
export async function unpackInitramfs(initramfs: string, dir: string): Promise<void> {
  await run(['bash', '-c', 'set -euo pipefail; zstd -dcq -- "$1" | (cd -- "$2" && cpio -id --quiet --no-absolute-filenames)', 'unpack', initramfs, dir]);
}

interface FileInfo {
  bytes: number;
  key: string;
}

/** Every regular file and symlink under root, relative path → size and inode key. */
async function walk(root: string): Promise<Map<string, FileInfo>> {
  const out = new Map<string, FileInfo>();
  const visit = async (rel: string): Promise<void> => {
    for (const e of await readdir(join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await visit(r);
      else {
        const st = await lstat(join(root, r));
        out.set(r, { bytes: st.size, key: `${st.dev}:${st.ino}` });
      }
    }
  };
  await visit('');
  return out;
}

/** usrmerge: dpkg lists say /lib/x, the file is at usr/lib/x (/lib is a symlink in the root). */
async function mergedAliases(root: string): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = [];
  for (const d of ['bin', 'sbin', 'lib', 'lib64']) {
    if ((await lstat(join(root, d)).catch(() => null))?.isSymbolicLink()) out.push([`${d}/`, `usr/${d}/`]);
  }
  return out;
}

function addTo(rows: Map<string, SizeRow>, name: string, bytes: number): void {
  const row = rows.get(name) ?? { name, bytes: 0, files: 0 };
  row.bytes += bytes;
  row.files++;
  rows.set(name, row);
}

const sorted = (rows: Map<string, SizeRow>) => [...rows.values()].sort((a, b) => b.bytes - a.bytes || a.name.localeCompare(b.name));

const LEFTOVERS: ReadonlyArray<[string, RegExp]> = [
  ['docs (usr/share/doc, info)', /^usr\/share\/(doc|info)\//],
  ['man pages', /^usr\/share\/man\//],
  ['locales (usr/share/locale, i18n)', /^usr\/share\/(locale|i18n)\//],
  ['firmware (usr/lib/firmware)', /^usr\/lib\/firmware\//],
  ['udev hwdb sources (usr/lib/udev/hwdb.d)', /^usr\/lib\/udev\/hwdb\.d\//],
];

/** Two levels (fs/xfs, drivers/scsi), and NIC vendors one by one: they are most of the modules' bytes. */
function moduleGroup(dir: string): string {
  const parts = dir.split('/');
  return parts.slice(0, dir.startsWith('drivers/net/ethernet/') ? 4 : 2).join('/');
}

export async function measureRoot(root: string): Promise<EnvSizes> {
  const files = await walk(root);
  const aliases = await mergedAliases(root);
  const counted = new Set<string>();
  const packages = new Map<string, SizeRow>();
  const infoDir = join(root, 'var/lib/dpkg/info');
  for (const list of (await readdir(infoDir)).filter((f) => f.endsWith('.list')).sort()) {
    const pkg = list.slice(0, -'.list'.length).split(':')[0]!;
    for (const line of (await readFile(join(infoDir, list), 'utf8')).split('\n')) {
      let rel = line.replace(/^\//, '');
      for (const [from, to] of aliases) if (rel.startsWith(from)) rel = to + rel.slice(from.length);
      const f = files.get(rel);
      if (!f || counted.has(f.key)) continue;
      counted.add(f.key);
      addTo(packages, pkg, f.bytes);
    }
  }
  const modules = new Map<string, SizeRow>();
  const leftovers = new Map<string, SizeRow>();
  let total = 0;
  const seen = new Set<string>();
  for (const [rel, f] of files) {
    if (seen.has(f.key)) continue;
    seen.add(f.key);
    total += f.bytes;
    if (!counted.has(f.key)) addTo(packages, '(no package)', f.bytes);
    const mod = /^usr\/lib\/modules\/[^/]+\/kernel\/(.+)\/[^/]+$/.exec(rel)?.[1];
    if (mod) addTo(modules, moduleGroup(mod), f.bytes);
    else if (rel.startsWith('usr/lib/modules/')) addTo(modules, '(modules.* indexes)', f.bytes);
    for (const [name, re] of LEFTOVERS) if (re.test(rel)) addTo(leftovers, name, f.bytes);
  }
  for (const [name] of LEFTOVERS) if (!leftovers.has(name)) leftovers.set(name, { name, bytes: 0, files: 0 });
  return { total, packages: sorted(packages), modules: sorted(modules), leftovers: [...leftovers.values()] };
}

const mib = (n: number) => (n / 1048576).toFixed(2);

/** Markdown tables: the `top` largest rows of each kind, the rest summed in one line. */
export function formatSizes(s: EnvSizes, top = 40): string[] {
  const table = (title: string, rows: SizeRow[]) => {
    const shown = rows.slice(0, top);
    const rest = rows.slice(top);
    const lines = [`| ${title} | MiB | files | share |`, '|---|---:|---:|---:|'];
    for (const r of shown) lines.push(`| ${r.name} | ${mib(r.bytes)} | ${r.files} | ${((100 * r.bytes) / s.total).toFixed(1)} % |`);
    if (rest.length) {
      const bytes = rest.reduce((a, r) => a + r.bytes, 0);
      lines.push(`| ${rest.length} more | ${mib(bytes)} | ${rest.reduce((a, r) => a + r.files, 0)} | ${((100 * bytes) / s.total).toFixed(1)} % |`);
    }
    return [...lines, ''];
  };
  return [
    `root: ${mib(s.total)} MiB unpacked`,
    '',
    ...table('package', s.packages),
    ...table('module directory (kernel/…)', s.modules),
    ...table('left over', s.leftovers),
  ];
}
