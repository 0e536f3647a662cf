/**
 * deploy: publish dist/ to node0's /srv/public (or a local dir) so that no node ever sees a half-updated
 * tree. `<dest>` is a symlink to `<dest>.releases/<id>`; a deploy
 *   1. rsyncs dist/ into `<dest>.releases/.incoming-<id>` (--checksum, links as links, --link-dest against
 *      the live release so unchanged files are hard links and cost nothing),
 *   2. verifies it with `sha256sum -c SHA256SUMS` on the destination,
 *   3. carries the nodes' live 01-* links over (the watcher and `reimage` own them, not dist/), and the
 *      live release's images the new one lacks (a node mid-install still fetches its image by name),
 *   4. renames it to `<id>` and switches `<dest>` to it with one rename of a new symlink,
 *   5. re-applies any node link switched in the old tree while 3–4 ran, then prunes old releases.
 * Steps 2–5 are one sh script run here or with one ssh call on node0. Killed at any point before 4, the
 * old tree stays served and the next deploy removes the leftover `.incoming-*`. A tree whose spec has boot
 * servers goes to each of them too: deploy-servers.ts stages and verifies everywhere before it switches
 * anything (its header gives the rule for partial failure).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { StageError, UsageError } from '../lib/errors.ts';
import { run } from '../lib/run.ts';
import { shq } from '../render/shell.ts';
import { IMAGES_DIR, MANIFEST_FILE, NODE_LINK_GLOBS, RUNS_DIR, SUMS_FILE } from '../layout.ts';
import { activate, precheckRelease, type Activation, type EtcVerdict } from './activate.ts';
import { deployedServers, fanOut, type ServerDeploy } from './deploy-servers.ts';
import { parseDest, runScript, sshCommand, type Target } from './target.ts';

export interface DeployOptions {
  /** The built tree (dist/). */
  from: string;
  /** `host:/srv/public` or a local path. */
  dest: string;
  dryRun?: boolean;
  /** Releases to keep, the live one included. */
  keep?: number;
  sshConfig?: string;
  /** Extra rsync flags (tests slow it down with --bwlimit to interrupt it). */
  rsyncArgs?: string[];
  now?: Date;
  log?: (line: string) => void;
  /** Check the new configs before the switch and reload node0's services after it (activate.ts). */
  activate?: boolean;
  /** serve's --run-dir on the destination, where --activate looks for a running serve. */
  runDir?: string;
  /** Destinations (node0 and boot servers) staged at once. */
  parallel?: number;
}

export interface DeployResult {
  dest: string;
  host: string | null;
  release: string | null;
  previous: string | null;
  /** `<dest>` was a plain directory and is now a symlink; the old directory became a release. */
  migrated: string | null;
  keptLinks: string[];
  lateLinks: string[];
  /** Images of the previous release kept for nodes that are still installing from them. */
  carried: string[];
  checked: number;
  pruned: string[];
  dryRun: boolean;
  changes: string[];
  seconds: number;
  activation: Activation | null;
  /** Each boot server's release (deploy-servers.ts): empty without boot servers. */
  servers: ServerDeploy[];
}

/** Node links are node0's state: never copied from dist/ over live ones, never deleted by --delete. */
const NODE_LINK_EXCLUDES = NODE_LINK_GLOBS.map(({ dir, glob }) => `--exclude=/${dir}/${glob}`);

export function releaseId(now: Date, specHash: string | undefined): string {
  const ts = now.toISOString().replace(/[-:.]/g, ''); // milliseconds too: two deploys in one second stay apart
  return `${ts}-${(specHash ?? 'nospec').slice(0, 12)}`;
}

interface Probe {
  kind: 'link' | 'dir' | 'none' | 'other';
  current: string | null;
  missingTools: string[];
}

function probeScript(dest: string): string {
  return [
    `d=${shq(dest)}`,
    'for t in rsync sha256sum; do command -v "$t" >/dev/null 2>&1 || printf "missing\\t%s\\n" "$t"; done',
    'if [ -L "$d" ]; then printf "link\\t%s\\n" "$(readlink -f -- "$d")"',
    'elif [ -d "$d" ]; then printf "dir\\t%s\\n" "$(cd -- "$d" && pwd -P)"',
    'elif [ -e "$d" ]; then printf "other\\t\\n"',
    'else printf "none\\t\\n"; fi',
  ].join('\n');
}

function parseProbe(out: string): Probe {
  const p: Probe = { kind: 'none', current: null, missingTools: [] };
  for (const line of out.split('\n')) {
    const [k, v] = line.split('\t');
    if (k === 'missing' && v) p.missingTools.push(v);
    else if (k === 'link' || k === 'dir' || k === 'none' || k === 'other') {
      p.kind = k;
      p.current = v || null;
    }
  }
  return p;
}

/** Step 2: `sha256sum -c` in the incoming dir ($inc, $sums); exit 4 on a mismatch; prints `checked <n>`. */
function verifyLines(): string[] {
  return [
    'n=$(cd -- "$inc" && sha256sum --quiet --strict -c "$sums" >&2 && wc -l < "$sums") || { echo "checksum verification failed in $inc" >&2; exit 4; }',
    'printf "checked\\t%s\\n" "$n"',
  ];
}

/** Step 2 alone, for a fan-out deploy that verifies every destination before it switches any. */
export function verifyScript(o: { releases: string; id: string }): string {
  return ['set -eu', `inc=${shq(`${o.releases}/.incoming-${o.id}`)}; sums=${shq(SUMS_FILE)}`, ...verifyLines()].join('\n');
}

/** Steps 2–5 as one script; prints `kept|late|pruned|checked <value>` lines. */
export function publishScript(o: { dest: string; releases: string; id: string; kind: Probe['kind']; keep: number; now: string; verified?: boolean }): string {
  const rel = `${basename(o.releases)}/${o.id}`;
  return [
    'set -eu',
    `d=${shq(o.dest)}; r=${shq(o.releases)}; id=${shq(o.id)}; inc="$r/.incoming-$id"; new="$r/$id"`,
    `img=${shq(IMAGES_DIR)}; sums=${shq(SUMS_FILE)}`,
    `tab=$(printf '\\t')`,
    // 2. verify on the destination, before anything is published (a fan-out deploy did it when staging)
    ...(o.verified ? [] : verifyLines()),
    // 3. carry the live node links over (only for nodes the new tree still has, to profiles it still has)
    ': > "$inc.links"',
    // one loop per loader directory; the per-MAC glob is the layout's constant, unquoted so the shell expands it
    ...NODE_LINK_GLOBS.flatMap(({ dir, glob }) => [
      `dir=${shq(dir)}`,
      'if [ -d "$d/$dir" ] && [ -d "$inc/$dir" ]; then',
      // node0 install gives the link directories to the watcher's user: the new release's ones too.
      '  chown --reference="$d/$dir" -- "$inc/$dir" 2>/dev/null || true',
      `  for l in "$d/$dir"/${glob}; do`,
      '    [ -L "$l" ] || continue',
      '    n=${l##*/}; t=$(readlink -- "$l")',
      '    [ -L "$inc/$dir/$n" ] && [ -e "$inc/$dir/$t" ] || continue',
      '    ln -sfn -- "$t" "$inc/$dir/$n"; printf "%s/%s\\t%s\\n" "$dir" "$n" "$t" >> "$inc.links"; printf "kept\\t%s/%s\\t%s\\n" "$dir" "$n" "$t"',
      '  done',
      'fi',
    ]),
    // 3b. a node mid-install fetches the image its autorun names: images of the live release that the new
    //     one lacks are carried over (hard links) for one release, with their .sha256 sidecars.
    'if [ -d "$d/$img" ] && [ -f "$d/$sums" ]; then',
    '  mkdir -p -- "$inc/$img"',
    '  for f in "$d/$img"/*; do',
    '    n=${f##*/}',
    '    [ -f "$f" ] && [ ! -e "$inc/$img/$n" ] && grep -qF -- "  $img/$n" "$d/$sums" || continue',
    '    ln -- "$f" "$inc/$img/$n" 2>/dev/null || cp -p -- "$f" "$inc/$img/$n"; printf "carried\\t%s\\n" "$n"',
    '  done',
    'fi',
    // 3c. the open runs' files (the nodes' install nonces, lifecycle/runs.ts): a node that reboots into its
    //     installer after the deploy must still find its run (0644 as written; nginx decides who gets them)
    `runs=${shq(RUNS_DIR)}`,
    'if [ -d "$d/$runs" ]; then',
    '  mkdir -p -- "$inc/$runs"',
    '  for f in "$d/$runs"/*; do if [ -f "$f" ]; then cp -p -- "$f" "$inc/$runs/"; printf "run\\t%s\\n" "${f##*/}"; fi; done',
    'fi',
    // 4. publish: rename into place, then one rename of a new symlink over <dest>
    'mv -T -- "$inc" "$new"',
    'prev=',
    'if [ -L "$d" ]; then prev=$(readlink -f -- "$d"); fi',
    ...(o.kind === 'dir'
      ? [
          // A plain directory cannot be replaced atomically by a symlink: move it aside as the oldest
          // release (still complete, a rollback target) and put the link in its place right after.
          `prev="$r/19700101T000000Z-migrated-${o.now}"`,
          'mv -T -- "$d" "$prev"',
          'printf "migrated\\t%s\\n" "$prev"',
        ]
      : []),
    `ln -s -- ${shq(rel)} "$d.tmp-$$"`,
    'mv -fT -- "$d.tmp-$$" "$d"',
    // 5. a link switched in the old tree between 3 and 4 wins, unless it was switched again in the new one
    'if [ -n "$prev" ]; then',
    '  while IFS="$tab" read -r p t; do',
    '    o=$(readlink -- "$prev/$p" || true); c=$(readlink -- "$new/$p" || true)',
    '    if [ -n "$o" ] && [ "$o" != "$t" ] && [ "$c" = "$t" ] && [ -e "$new/${p%/*}/$o" ]; then',
    '      ln -s -- "$o" "$new/$p.tmp-$$"; mv -fT -- "$new/$p.tmp-$$" "$new/$p"; printf "late\\t%s\\t%s\\n" "$p" "$o"',
    '    fi',
    '  done < "$r/.incoming-$id.links"',
    'fi',
    'rm -f -- "$r/.incoming-$id.links"',
    // prune: oldest first, never the live release
    `keep=${o.keep}`,
    'count=$(ls -1 -- "$r" | wc -l)',
    'for old in $(ls -1 -- "$r" | sort); do',
    '  [ "$count" -gt "$keep" ] || break',
    '  [ "$r/$old" = "$new" ] && continue',
    '  rm -rf -- "${r:?}/$old"; count=$((count - 1)); printf "pruned\\t%s\\n" "$old"',
    'done',
  ].join('\n');
}

/** One destination with a release received and verified beside its live one, not yet switched. */
interface Staged {
  target: Target;
  host: string | null;
  dest: string;
  releases: string;
  id: string;
  probe: Probe;
  checked: number;
  /** --activate's verdict on the new release's etc/ (node0 only). */
  etc: EtcVerdict;
}

interface Destination {
  /** `host:/path` or a local path. */
  dest: string;
  /** The tree to send there. */
  from: string;
  /** Run --activate's checks (node0 only). */
  activate: boolean;
}

const whereOf = (host: string | null, p: string) => (host ? `${host}:${p}` : p);

function parseDestination(d: string): { host: string | null; dest: string } {
  const parsed = parseDest(d);
  const dest = (parsed.host ? parsed.path : resolve(parsed.path)).replace(/\/+$/, '');
  if (!dest || dest === '/') throw new UsageError(`refusing to deploy to ${d}`);
  return { host: parsed.host ?? null, dest };
}

async function probeDest(target: Target, host: string | null, dest: string): Promise<Probe> {
  const probe = parseProbe((await runScript(target, probeScript(dest))).stdout);
  if (probe.missingTools.length) throw new StageError('deploy', `${host ?? 'this machine'} lacks ${probe.missingTools.join(', ')}, which deploy needs to receive and verify the tree\n  hint: apt-get install rsync coreutils (or pacman -S rsync coreutils)`);
  if (probe.kind === 'other') throw new StageError('deploy', `${whereOf(host, dest)} exists and is neither a directory nor a symlink`);
  return probe;
}

/** Step 1 (and 2 with `verify`): the tree rsynced into `<dest>.releases/.incoming-<id>` beside the live release. */
async function stageRelease(d: Destination, id: string, o: DeployOptions, verify: boolean): Promise<Staged> {
  const log = o.log ?? (() => {});
  const { host, dest } = parseDestination(d.dest);
  const target: Target = { ...(host ? { host } : {}), ...(o.sshConfig ? { sshConfig: o.sshConfig } : {}) };
  const rsh = host ? ['--rsh', sshCommand(target).map(shq).join(' ')] : [];
  const probe = await probeDest(target, host, dest);
  const releases = `${dest}.releases`;
  if (probe.kind === 'dir') log(`${whereOf(host, dest)} is a plain directory: it becomes ${releases}/19700101T000000Z-migrated-… (kept as a rollback release) and ${dest} a symlink to the new release`);
  await runScript(target, `set -eu\nmkdir -p -- ${shq(releases)}\nrm -rf -- ${shq(releases)}/.incoming-*`);
  log(`rsync ${d.from}/ → ${whereOf(host, `${releases}/.incoming-${id}/`)}`);
  await run([
    'rsync',
    '--archive', // links as links, permissions and mtimes (the build clamps them, so --link-dest matches)
    '--checksum', // decide by content, not by size+mtime
    '--delete-after',
    ...(probe.current ? [`--link-dest=${probe.current}`] : []),
    ...(o.rsyncArgs ?? []),
    ...rsh,
    `${d.from}/`,
    whereOf(host, `${releases}/.incoming-${id}/`),
  ]);
  const ctx = { target, dest, runDir: o.runDir ?? '/run/portacluster' };
  const etc = d.activate ? await precheckRelease(ctx, `${releases}/.incoming-${id}`, probe.current) : 'same';
  let checked = 0;
  if (verify) {
    const out = await runScript(target, verifyScript({ releases, id }), { nothrow: true });
    if (out.exitCode === 4) throw new StageError('deploy', `the tree received on ${host ?? 'this machine'} does not match its ${SUMS_FILE}\n${out.stderr.trim()}`);
    if (out.exitCode !== 0) throw new StageError('deploy', `verifying the tree received on ${host ?? 'this machine'} failed (exit ${out.exitCode}):\n${out.stderr.trim()}`);
    checked = Number(/^checked\t(\d+)/m.exec(out.stdout)?.[1] ?? 0);
  }
  return { target, host, dest, releases, id, probe, checked, etc };
}

/** Removes a staged release that will not be switched (a fan-out deploy where another destination failed). */
async function discardStaged(s: Staged): Promise<void> {
  await runScript(s.target, `rm -rf -- ${shq(`${s.releases}/.incoming-${s.id}`)} ${shq(`${s.releases}/.incoming-${s.id}.links`)}`, { nothrow: true });
}

/** Steps 3–5 (and 2 unless staging verified): carry links, runs and images over, switch, prune. */
async function publishRelease(s: Staged, o: DeployOptions & { keep: number; now: Date }, activate: boolean): Promise<DeployResult> {
  const started = Date.now();
  const result: DeployResult = { dest: s.dest, host: s.host, release: null, previous: s.probe.current, migrated: null, keptLinks: [], lateLinks: [], carried: [], checked: s.checked, pruned: [], dryRun: false, changes: [], seconds: 0, activation: null, servers: [] };
  const out = await runScript(s.target, publishScript({ dest: s.dest, releases: s.releases, id: s.id, kind: s.probe.kind, keep: o.keep, now: o.now.toISOString().replace(/[-:.]/g, ''), verified: s.checked > 0 }), { nothrow: true });
  if (out.exitCode === 4) throw new StageError('deploy', `the tree received on ${s.host ?? 'this machine'} does not match its ${SUMS_FILE}; nothing was published\n${out.stderr.trim()}`);
  if (out.exitCode !== 0) throw new StageError('deploy', `publishing on ${s.host ?? 'this machine'} failed (exit ${out.exitCode}):\n${out.stderr.trim()}`);
  for (const line of out.stdout.split('\n')) {
    const [k, a, b] = line.split('\t');
    if (k === 'checked') result.checked = Number(a);
    else if (k === 'kept') result.keptLinks.push(`${a} -> ${b}`);
    else if (k === 'late') result.lateLinks.push(`${a} -> ${b}`);
    else if (k === 'carried' && a) result.carried.push(a);
    else if (k === 'pruned' && a) result.pruned.push(a);
    else if (k === 'migrated' && a) result.migrated = a;
  }
  result.release = `${s.releases}/${s.id}`;
  if (activate) result.activation = await activate_(s, o, result.migrated ?? result.previous);
  result.seconds = (Date.now() - started) / 1000;
  return result;
}

const activate_ = (s: Staged, o: DeployOptions, previous: string | null) => activate({ target: s.target, dest: s.dest, runDir: o.runDir ?? '/run/portacluster' }, s.etc, previous);

export async function deploy(o: DeployOptions): Promise<DeployResult> {
  const started = Date.now();
  const from = resolve(o.from);
  if (!existsSync(join(from, SUMS_FILE))) throw new UsageError(`${o.from} has no ${SUMS_FILE}: not a built tree\n  hint: run \`portacluster build\` first`);
  const keep = o.keep ?? 3;
  if (!Number.isInteger(keep) || keep < 1) throw new UsageError('--keep must be at least 1');
  if (o.activate && keep < 2) throw new UsageError('--activate needs --keep 2 or more: the previous release is what it switches back to when a reload fails');
  const { host, dest } = parseDestination(o.dest);
  const servers = await deployedServers(from);

  if (o.dryRun) {
    const target: Target = { ...(host ? { host } : {}), ...(o.sshConfig ? { sshConfig: o.sshConfig } : {}) };
    const probe = await probeDest(target, host, dest);
    const rsh = host ? ['--rsh', sshCommand(target).map(shq).join(' ')] : [];
    // Compare with the live tree; node links are excluded so they are neither shown as changes nor deleted.
    const r = await run(['rsync', '--dry-run', '--archive', '--checksum', '--delete-after', '--itemize-changes', ...NODE_LINK_EXCLUDES, ...rsh, `${from}/`, whereOf(host, `${probe.current ?? dest}/`)]);
    // rsync says "created directory" for the destination even in a dry run, where it creates nothing.
    const changes = r.stdout
      .split('\n')
      .filter((l) => l && !l.startsWith('.d..t'))
      .map((l) => l.replace(/^created directory /, 'would create directory '));
    return { dest, host, release: null, previous: probe.current, migrated: null, keptLinks: [], lateLinks: [], carried: [], checked: 0, pruned: [], dryRun: true, changes, seconds: (Date.now() - started) / 1000, activation: null, servers: servers.map((b) => ({ name: b.name, dest: b.dest, release: null, error: null })) };
  }

  const manifest = JSON.parse(await readFile(join(from, MANIFEST_FILE), 'utf8').catch(() => '{}')) as { specHash?: string };
  const now = o.now ?? new Date();
  const id = releaseId(now, manifest.specHash);
  if (servers.length === 0) {
    const staged = await stageRelease({ dest: o.dest, from, activate: !!o.activate }, id, o, false);
    return { ...(await publishRelease(staged, { ...o, keep, now }, !!o.activate)), seconds: (Date.now() - started) / 1000, servers: [] };
  }
  const r = await fanOut({
    o,
    from,
    servers,
    node0: o.dest,
    stage: (d, verify) => stageRelease(d, id, o, verify),
    publish: (s, activate) => publishRelease(s, { ...o, keep, now }, activate),
    discard: discardStaged,
  });
  return { ...r, seconds: (Date.now() - started) / 1000 };
}
