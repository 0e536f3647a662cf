/**
 * Follows a log file the way `tail -F` does: from its end (or start), across rotation (a new file under the
 * same name: the old one is read to its end first) and truncation (copytruncate: start over at 0).
 * Polling, not fs.watch: inotify loses the file on rename and is unreliable on some filesystems; a 200 ms
 * poll is cheap and bounds the delay.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';

export interface Tailer {
  /** Resolves once the file (if present) has been opened and positioned. */
  ready: Promise<void>;
  stop(): Promise<void>;
}

export function tailFile(file: string, onLine: (line: string) => void, o: { fromStart?: boolean; pollMs?: number } = {}): Tailer {
  const pollMs = o.pollMs ?? 200;
  let fh: FileHandle | null = null;
  let ino = -1;
  let pos = 0;
  let partial = '';
  let stopped = false;
  let first = true;
  const buf = Buffer.alloc(64 * 1024);

  async function drain(): Promise<void> {
    if (!fh) return;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) return;
      pos += bytesRead;
      const lines = (partial + buf.subarray(0, bytesRead).toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) if (line) onLine(line);
    }
  }

  async function tick(): Promise<void> {
    const st = await stat(file).catch(() => null);
    if (fh) {
      const cur = await fh.stat();
      if (cur.size < pos) {
        pos = 0; // truncated in place
        partial = '';
      }
      await drain();
      if (st && st.ino !== ino) {
        // Rotated: the old file is finished (drained above); continue with the new one from its start.
        await fh.close();
        fh = null;
        partial = '';
      }
    }
    if (!fh && st) {
      fh = await open(file, 'r');
      ino = (await fh.stat()).ino;
      pos = first && !o.fromStart ? st.size : 0;
      await drain();
    }
    first = false;
  }

  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const loop = () => {
    running = tick()
      .catch(() => {})
      .finally(() => {
        if (!stopped) timer = setTimeout(loop, pollMs);
      });
    return running;
  };
  const ready = loop();
  return {
    ready,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
      await fh?.close();
      fh = null;
    },
  };
}

export interface AccessLine {
  remote: string;
  time: string;
  method: string;
  url: string;
  status: number;
  /** $body_bytes_sent: what the response carried (a broken transfer logs what it got through). */
  bytes: number;
}

// nginx `combined` (and the lead's `portacluster` format, which only appends fields):
// $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent ...
const COMBINED = /^(\S+) \S+ \S+ \[([^\]]+)\] "([A-Z]+) (\S+)(?: [^"]*)?" (\d{3}) (\d+)/;

export function parseAccessLine(line: string): AccessLine | null {
  const m = COMBINED.exec(line);
  return m ? { remote: m[1]!, time: m[2]!, method: m[3]!, url: m[4]!, status: Number(m[5]), bytes: Number(m[6]) } : null;
}
