/**
 * Writes a download to disk while a worker thread hashes it. Reading the socket, hashing and writing one
 * after the other on one thread gives ~0.4× curl's throughput (bench/download.ts); here the main thread
 * only reads the socket and copies into shared batches, a worker hashes them, and libuv's thread pool
 * writes them at their offsets.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';

export type SinkAlgo = 'sha256' | 'sha512';

/** The file could not be written (disk full, permissions): not a network problem, not worth a retry. */
export class SinkError extends Error {
  override name = 'SinkError';
}

export interface HashingSink {
  /** Opens the file: keeps its first `prefixBytes` (hashed first) and writes after them. */
  open(path: string, o: { prefixBytes: number }): Promise<void>;
  /** Queues bytes; returns a promise only when every batch is busy and the caller should wait. */
  write(chunk: Buffer): Promise<void> | undefined;
  /** Writes what is queued, closes the file and returns the digests of all of it (prefix included). */
  finish(): Promise<{ size: number; hex: Record<SinkAlgo, string> }>;
  /** Stops without a result; safe to call after finish(). */
  close(): Promise<void>;
}

/** Batches are 1 MiB of shared memory, reused: no copy to the worker and no garbage per chunk. */
const BATCH = 1 << 20;
const BATCHES = 16;

// Plain CommonJS so it runs the same under node, tsx and vitest (no TypeScript loader in the worker).
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const { algos, batches } = workerData;
const hashes = algos.map((a) => createHash(a));
parentPort.on('message', (m) => {
  try {
    if (m.type === 'prefix') {
      const fd = fs.openSync(m.path, 'r');
      const buf = Buffer.allocUnsafe(1 << 20);
      for (let left = m.bytes; left > 0; ) {
        const n = fs.readSync(fd, buf, 0, Math.min(buf.length, left), null);
        if (n === 0) throw new Error(m.path + ' is shorter than the ' + m.bytes + ' bytes to resume from');
        for (const h of hashes) h.update(buf.subarray(0, n));
        left -= n;
      }
      fs.closeSync(fd);
    } else if (m.type === 'data') {
      const view = new Uint8Array(batches[m.i], 0, m.len);
      for (const h of hashes) h.update(view);
      parentPort.postMessage({ type: 'hashed', i: m.i });
    } else if (m.type === 'end') {
      const hex = {};
      algos.forEach((a, i) => (hex[a] = hashes[i].digest('hex')));
      parentPort.postMessage({ type: 'done', hex });
    }
  } catch (e) {
    parentPort.postMessage({ type: 'error', message: String((e && e.message) || e) });
  }
});
`;

interface Deferred<T> {
  resolve: (v: T) => void;
  reject: (e: Error) => void;
}

/** Starts the worker at once (it takes tens of ms to boot: callers start it alongside the HTTP request). */
export function startHashingSink(algos: SinkAlgo[]): HashingSink {
  const shared = Array.from({ length: BATCHES }, () => new SharedArrayBuffer(BATCH));
  // execArgv: [] so the worker does not load the parent's loaders (tsx).
  const worker = new Worker(WORKER, { eval: true, execArgv: [], workerData: { algos, batches: shared } });
  const views = shared.map((sab) => Buffer.from(sab));
  /** Per batch: how many of {hashed, written} are still outstanding. */
  const busy = new Array<number>(BATCHES).fill(0);
  const free: number[] = views.map((_, i) => i);

  let path = '(not opened)';
  let fh: FileHandle | null = null;
  let position = 0;
  let current = -1;
  let fill = 0;
  let failure: Error | null = null;
  let closed = false;
  let waiter: Deferred<void> | null = null;
  let idle: Deferred<void> | null = null;
  let digests: Deferred<Record<SinkAlgo, string>> | null = null;

  const fail = (e: Error) => {
    if (closed) return;
    failure ??= e instanceof SinkError ? e : new SinkError(`writing ${path}: ${e.message}`);
    for (const d of [waiter, idle, digests]) d?.reject(failure);
    waiter = idle = digests = null;
  };
  const release = (i: number) => {
    if (--busy[i]! > 0) return;
    free.push(i);
    waiter?.resolve();
    waiter = null;
    if (free.length === BATCHES) {
      idle?.resolve();
      idle = null;
    }
  };
  worker.on('message', (m: { type: string; i?: number; message?: string; hex?: Record<SinkAlgo, string> }) => {
    if (m.type === 'hashed') release(m.i!);
    else if (m.type === 'done') digests?.resolve(m.hex!);
    else if (m.type === 'error') fail(new SinkError(`hashing ${path}: ${m.message}`));
  });
  worker.on('error', (e) => fail(e));
  worker.on('exit', () => fail(new SinkError(`the worker hashing ${path} exited early`)));

  const flush = () => {
    if (current < 0 || fill === 0) return;
    const i = current;
    const len = fill;
    busy[i] = 2;
    worker.postMessage({ type: 'data', i, len });
    // Positional writes: completion order does not matter.
    fh!.write(views[i]!, 0, len, position).then(
      ({ bytesWritten }) => (bytesWritten === len ? release(i) : fail(new Error(`short write (${bytesWritten} of ${len} bytes)`))),
      (e: Error) => fail(e),
    );
    position += fill;
    current = -1;
    fill = 0;
  };

  return {
    async open(file, o) {
      path = file;
      try {
        fh = await open(file, o.prefixBytes > 0 ? 'r+' : 'w');
        // Anything past the prefix is from an attempt that is being replaced.
        await fh.truncate(o.prefixBytes);
      } catch (e) {
        fail(e as Error);
        throw failure;
      }
      position = o.prefixBytes;
      if (o.prefixBytes > 0) worker.postMessage({ type: 'prefix', path: file, bytes: o.prefixBytes });
    },
    write(chunk) {
      if (failure) return Promise.reject(failure);
      for (let off = 0; off < chunk.length; ) {
        if (current < 0) {
          if (free.length === 0) {
            // Every batch is being hashed or written: wait, then take the rest of this chunk.
            return new Promise<void>((resolve, reject) => (waiter = { resolve, reject })).then(() => this.write(chunk.subarray(off)));
          }
          current = free.shift()!;
        }
        const n = chunk.copy(views[current]!, fill, off);
        fill += n;
        off += n;
        if (fill === BATCH) flush();
      }
      return undefined;
    },
    async finish() {
      if (failure) throw failure;
      flush();
      if (free.length < BATCHES) await new Promise<void>((resolve, reject) => (idle = { resolve, reject }));
      const hex = await new Promise<Record<SinkAlgo, string>>((resolve, reject) => {
        digests = { resolve, reject };
        worker.postMessage({ type: 'end' });
      });
      await fh!.close();
      fh = null;
      return { size: position, hex };
    },
    async close() {
      closed = true;
      await fh?.close().catch(() => {});
      fh = null;
      await worker.terminate();
    },
  };
}
