/**
 * A real HTTP server on 127.0.0.1 that serves one file and misbehaves on request: drops the connection
 * midway, ignores Range, answers an error status, stalls. Used by the download tests and the benchmark.
 */
import { createReadStream } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface Behaviour {
  /** Answer this status with a short text body instead of the file. */
  status?: number;
  /** Answer 200 with the whole file even when asked for a range. */
  ignoreRange?: boolean;
  /** Send this many body bytes, then close the connection mid-body (they do arrive). */
  dropAfter?: number;
  /** Send this many body bytes, then reset the connection (TCP RST: unread bytes may be lost). */
  resetAfter?: number;
  /** Send this many body bytes, then close the connection cleanly (a short body under a full Content-Length). */
  truncateAt?: number;
  /** Send the headers, then nothing. */
  stall?: boolean;
  /** Serve these bytes instead of the configured file (a changed or wrong file). */
  body?: Buffer;
  /** Answer 302 to this path on the same server (mirrors redirect a lot). */
  redirectTo?: string;
  /** Leave out Content-Length (chunked transfer): only the digest can tell a short body then. */
  noLength?: boolean;
  /** Pace the body to this many bytes per second (a real link, e.g. 117e6 for 1 GbE). */
  rate?: number;
  /** ETag to send; null sends none (and no Last-Modified). Default: a fixed strong tag. */
  etag?: string | null;
}

export interface SeenRequest {
  range?: string;
  ifRange?: string;
}

export interface FileServer {
  url: string;
  requests: SeenRequest[];
  close(): Promise<void>;
}

type Content = Buffer | { path: string; size: number };

export async function startFileServer(content: Content, behave: (n: number) => Behaviour = () => ({})): Promise<FileServer> {
  const requests: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    const n = requests.length;
    requests.push({ range: req.headers.range, ifRange: req.headers['if-range'] as string | undefined });
    serve(req, res, content, behave(n));
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/images/systemrescue.iso`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function serve(req: IncomingMessage, res: ServerResponse, content: Content, b: Behaviour): void {
  if (b.status) {
    res.writeHead(b.status, { 'content-type': 'text/plain' });
    res.end(`status ${b.status}\n`);
    return;
  }
  if (b.redirectTo) {
    res.writeHead(302, { location: b.redirectTo });
    res.end();
    return;
  }
  const data = b.body ?? content;
  const size = Buffer.isBuffer(data) ? data.length : data.size;
  const etag = b.etag === undefined ? '"v1"' : b.etag;
  const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes' };
  if (etag !== null) {
    headers.etag = etag;
    headers['last-modified'] = 'Tue, 14 Nov 2023 22:13:20 GMT';
  }
  let start = 0;
  const range = req.headers.range?.match(/^bytes=(\d+)-$/);
  const ifRange = req.headers['if-range'];
  const rangeValid = ifRange === undefined || ifRange === etag || (etag !== null && ifRange === headers['last-modified']);
  if (range && !b.ignoreRange && rangeValid) {
    start = Number(range[1]);
    if (start >= size) {
      res.writeHead(416, { 'content-range': `bytes */${size}` });
      res.end();
      return;
    }
    headers['content-range'] = `bytes ${start}-${size - 1}/${size}`;
  }
  if (!b.noLength) headers['content-length'] = size - start;
  res.writeHead(start > 0 ? 206 : 200, headers);
  if (b.stall) {
    res.flushHeaders();
    return;
  }
  const cut = b.dropAfter ?? b.resetAfter ?? b.truncateAt;
  const end = cut !== undefined ? Math.min(size, start + cut) : size;
  const finish = () => {
    if (b.resetAfter !== undefined) setTimeout(() => res.socket?.resetAndDestroy(), 50);
    else if (b.dropAfter !== undefined) res.socket?.destroy();
    else if (b.truncateAt !== undefined) res.socket?.end();
    else res.end();
  };
  if (Buffer.isBuffer(data)) {
    res.write(data.subarray(start, end), finish);
    return;
  }
  const stream = createReadStream(data.path, { start, end: end - 1, highWaterMark: b.rate ? 64 << 10 : 1 << 20 });
  const began = Date.now();
  let sent = 0;
  stream.on('data', (chunk) => {
    sent += chunk.length;
    const ahead = b.rate ? (sent / b.rate) * 1000 - (Date.now() - began) : 0;
    const written = res.write(chunk);
    if (!written || ahead > 1) {
      stream.pause();
      const resume = () => (ahead > 1 ? setTimeout(() => stream.resume(), ahead) : stream.resume());
      if (written) resume();
      else res.once('drain', resume);
    }
  });
  stream.on('end', finish);
}
