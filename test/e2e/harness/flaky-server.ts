/**
 * An HTTP file server with Range support that breaks its first `drops` downloads of large files midway
 * (sends `dropAt` of the body, then resets the connection): the "server dropped the tarball" fault.
 * Also used by the fast tests against the installer's download functions.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join, normalize } from 'node:path';

export interface FlakyEvent {
  path: string;
  range: string | null;
  status: number;
  dropped: boolean;
}

export interface FlakyOptions {
  root: string;
  /** How many GETs of a file to break. */
  drops: number;
  /** Fraction of the (remaining) body sent before a break. */
  dropAt: number;
  onEvent?: (e: FlakyEvent) => void;
}

export function flakyServer(o: FlakyOptions): Server {
  let dropsLeft = o.drops;
  return createServer((req, res) => {
    void (async () => {
      const rel = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^(\.\.(\/|$))+/, '');
      const file = join(o.root, rel);
      const st = await stat(file).catch(() => null);
      const range = req.headers.range ?? null;
      if (!st?.isFile()) {
        o.onEvent?.({ path: rel, range, status: 404, dropped: false });
        res.writeHead(404).end();
        return;
      }
      let start = 0;
      const m = range ? /^bytes=(\d+)-$/.exec(range) : null;
      if (m) start = Number(m[1]);
      const length = st.size - start;
      const status = m ? 206 : 200;
      const headers: Record<string, string | number> = { 'content-length': length, 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
      if (m) headers['content-range'] = `bytes ${start}-${st.size - 1}/${st.size}`;
      res.writeHead(status, headers);
      const drop = dropsLeft > 0 && length > 65536;
      if (drop) dropsLeft--;
      o.onEvent?.({ path: rel, range, status, dropped: drop });
      const end = drop ? start + Math.floor(length * o.dropAt) : st.size - 1;
      const stream = createReadStream(file, { start, end });
      stream.pipe(res, { end: !drop });
      // A reset connection mid-body: curl sees a transfer closed with bytes outstanding.
      if (drop) stream.on('end', () => res.socket?.destroy());
    })();
  });
}
