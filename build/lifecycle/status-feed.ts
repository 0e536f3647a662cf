/**
 * Follows the state file and the served tree's links and says which rows changed. The status page's event
 * stream and `status --watch` both sit on it.
 *
 * Why follow the file rather than hear from the watcher's report handler: the watcher is not its only
 * writer — `reimage`/`rescue`/`normal` mark nodes requested from another process, and links change by hand
 * too — and the file is the one record all of them agree on (written whole, by rename). fs.watch on the
 * file's directory (the rename replaces the inode, so watching the file itself would go deaf after the
 * first write) makes a change show within ~100 ms; a slow poll catches what inotify cannot see (an NFS
 * mount, a link switched over ssh, a directory created after we started) and moves the time-based fields.
 * Reads are coalesced: a burst of reports costs one read per `minGapMs`. The links are read again only
 * when their directory changed (`linkDirs`) or on the slow poll: at 500 nodes reading them costs as much as
 * parsing the state file (~35 ms each here), and a progress report changes no link.
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { readState } from './state.ts';
import { changedRows, statusRows, type StatusNode, type StatusRow } from './status-rows.ts';

export interface FeedOptions {
  nodes: readonly StatusNode[];
  stateFile: string;
  /** Each node's current profile (links.ts readProfiles); errors count as "no link". */
  readLinks: () => Promise<ReadonlyMap<string, string | null>>;
  /** Where the links live (the tree's pxelinux.cfg/), watched; none (links over ssh): read on every refresh. */
  linkDirs?: readonly string[];
  /** The slow poll (default 2000 ms). */
  pollMs?: number;
  /** At most one read per this long (default 100 ms). */
  minGapMs?: number;
  /** Every refresh that changed something (changed = only those rows); the first call has every row. */
  onChange: (rows: readonly StatusRow[], changed: readonly StatusRow[]) => void;
  onError?: (e: Error) => void;
}

export interface Feed {
  /** The rows as last read (empty until the first read finished). */
  rows(): readonly StatusRow[];
  /** Resolves after the first read. */
  ready: Promise<void>;
  /** Read now (coalesced with a read already under way). */
  refresh(): Promise<void>;
  close(): void;
}

export function followStatus(o: FeedOptions): Feed {
  let current: StatusRow[] = [];
  let byName = new Map<string, StatusRow>();
  let closed = false;
  let running: Promise<void> | null = null;
  let again = false;
  let lastRead = 0;
  let gapTimer: NodeJS.Timeout | undefined;

  let links: ReadonlyMap<string, string | null> = new Map();
  let linksStale = true;
  const watchesLinks = Boolean(o.linkDirs?.length);

  async function readOnce(): Promise<void> {
    lastRead = Date.now();
    const fresh = !watchesLinks || linksStale;
    linksStale = false;
    const [doc, l] = await Promise.all([readState(o.stateFile), fresh ? o.readLinks().catch(() => new Map<string, string | null>()) : links]);
    links = l;
    const rows = statusRows(o.nodes, doc, links);
    const changed = changedRows(byName, rows);
    current = rows;
    byName = new Map(rows.map((r) => [r.name, r]));
    if (changed.length && !closed) o.onChange(rows, changed);
  }

  function refresh(): Promise<void> {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        try {
          await readOnce();
        } catch (e) {
          o.onError?.(e as Error);
        }
      } while (again && !closed);
    })().finally(() => (running = null));
    return running;
  }

  /** A file event: read soon, but not more often than minGapMs. */
  function poke(): void {
    if (closed || gapTimer) return;
    const wait = Math.max(0, lastRead + (o.minGapMs ?? 100) - Date.now());
    gapTimer = setTimeout(() => {
      gapTimer = undefined;
      void refresh();
    }, wait);
  }

  // One fs.watch per directory: the state file's (only its own name counts) and the links'.
  const watched = [
    { dir: dirname(o.stateFile), hit: (name: string | null) => name === null || name === basename(o.stateFile), links: false },
    ...(o.linkDirs ?? []).map((dir) => ({ dir, hit: () => true, links: true })),
  ].map((w) => ({ ...w, watcher: null as FSWatcher | null }));
  function ensureWatchers(): void {
    for (const w of watched) {
      if (w.watcher || closed) continue;
      try {
        w.watcher = watch(w.dir, (_event, name) => {
          if (!w.hit(name)) return;
          if (w.links) linksStale = true;
          poke();
        });
        w.watcher.on('error', () => {
          w.watcher?.close();
          w.watcher = null;
        });
      } catch {
        // No directory yet (nothing was ever reported): the poll tries again, and reads meanwhile.
      }
    }
  }
  ensureWatchers();
  const poll = setInterval(() => {
    ensureWatchers();
    linksStale = true;
    void refresh();
  }, o.pollMs ?? 2000);
  const ready = refresh();

  return {
    rows: () => current,
    ready,
    refresh,
    close() {
      closed = true;
      clearInterval(poll);
      clearTimeout(gapTimer);
      for (const w of watched) w.watcher?.close();
    },
  };
}
