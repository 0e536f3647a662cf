/**
 * Writes a download to disk and hashes it on a worker thread. On one thread, reading the socket, hashing
 * and writing run one after the other (~0.4× curl's throughput, measured by bench/download.ts); with the
 * worker the main thread only reads the socket.
 */
import { Worker } from 'node:worker_threads';

export type SinkAlgo = 'sha256' | 'sha512';

/** The file could not be written (disk full, permissions): not a network problem, not worth a retry. */
export class SinkError extends Error {
  override name = 'SinkError';
}

export interface HashingSink {
  /** Opens the file (append after `prefixBytes` already there, whose digest is computed first). */
  open(path: string, o: { append: boolean; prefixBytes: number }): Promise<void>;
  /** Queues bytes; returns a promise only when the worker is behind and the caller should wait. */
  write(chunk: Buffer): Promise<void> | undefined;
  /** Flushes, closes the file and returns the digests of everything in it (prefix included). */
  finish(): Promise<{ size: number; hex: Record<SinkAlgo, string> }>;
  /** Stops the worker without a result (the response was not a body to keep). */
  close(): Promise<void>;
}

// Plain CommonJS so it runs the same under node, tsx and vitest (no TypeScript loader needed in the worker).
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const { algos } = workerData;
const hashes = algos.map((a) => createHash(a));
let size = 0;
let out = -1;
const fail = (e) => parentPort.postMessage({ type: 'error', message: String((e && e.message) || e) });
function open({ path, append, prefixBytes }) {
  if (prefixBytes > 0) {
    const fd = fs.openSync(path, 'r');
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let left = prefixBytes; left > 0; ) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, left), null);
      if (n === 0) throw new Error(path + ' is shorter than the ' + prefixBytes + ' bytes to resume from');
      for (const h of hashes) h.update(buf.subarray(0, n));
      left -= n;
    }
    fs.closeSync(fd);
    size = prefixBytes;
  }
  out = fs.openSync(path, append ? 'a' : 'w');
  parentPort.postMessage({ type: 'ready' });
}
parentPort.on('message', (m) => {
  try {
    if (m.type === 'open') open(m);
    else if (m.type === 'data') {
      const b = Buffer.from(m.buf);
      for (const h of hashes) h.update(b);
      for (let off = 0; off < b.length; ) off += fs.writeSync(out, b, off);
      size += b.length;
      parentPort.postMessage({ type: 'ack' });
    } else if (m.type === 'end') {
      fs.closeSync(out);
      const hex = {};
      algos.forEach((a, i) => (hex[a] = hashes[i].digest('hex')));
      parentPort.postMessage({ type: 'done', hex, size });
    }
  } catch (e) { fail(e); }
});
`;

/** Batches of this size go to the worker: fewer messages, and each batch owns its memory to transfer. */
const BATCH = 1 << 20;
/** Batches in flight before write() asks the caller to wait: bounds memory on a fast network and slow disk. */
const MAX_IN_FLIGHT = 16;

interface Deferred<T> {
  resolve: (v: T) => void;
  reject: (e: Error) => void;
}

/**
 * Starts the worker at once (it takes tens of ms to boot, so callers start it alongside the HTTP request);
 * nothing is written before open().
 */
export function startHashingSink(algos: SinkAlgo[]): HashingSink {
  // execArgv: [] so the worker does not load the parent's loaders (tsx).
  const worker = new Worker(WORKER, { eval: true, execArgv: [], workerData: { algos } });
  let path = '(not opened)';
  let failure: Error | null = null;
  let finished = false;
  let inFlight = 0;
  let ready: Deferred<void> | null = null;
  let waiter: Deferred<void> | null = null;
  let done: Deferred<{ size: number; hex: Record<SinkAlgo, string> }> | null = null;

  const failAll = (e: Error) => {
    if (finished) return;
    failure ??= e;
    for (const d of [ready, waiter, done]) d?.reject(failure);
    ready = waiter = done = null;
  };
  worker.on('message', (m: { type: string; message?: string; size?: number; hex?: Record<SinkAlgo, string> }) => {
    if (m.type === 'ready') {
      ready?.resolve();
      ready = null;
    } else if (m.type === 'ack') {
      inFlight--;
      if (waiter && inFlight < MAX_IN_FLIGHT) {
        waiter.resolve();
        waiter = null;
      }
    } else if (m.type === 'done') {
      finished = true;
      done?.resolve({ size: m.size!, hex: m.hex! });
      void worker.terminate();
    } else if (m.type === 'error') {
      failAll(new SinkError(`writing ${path}: ${m.message}`));
      void worker.terminate();
    }
  });
  worker.on('error', (e) => failAll(new SinkError(`writing ${path}: ${e.message}`)));
  worker.on('exit', () => failAll(new SinkError(`the worker writing ${path} exited early`)));

  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const flush = () => {
    if (pendingBytes === 0) return;
    const joined = pending.length === 1 ? Buffer.from(pending[0]!) : Buffer.concat(pending, pendingBytes);
    // Transfer, not copy: only possible when the batch owns its whole ArrayBuffer.
    const ab = joined.byteOffset === 0 && joined.buffer.byteLength === joined.length ? joined.buffer : new Uint8Array(joined).buffer;
    worker.postMessage({ type: 'data', buf: ab }, [ab as ArrayBuffer]);
    inFlight++;
    pending = [];
    pendingBytes = 0;
  };

  return {
    open(file, o) {
      path = file;
      if (failure) return Promise.reject(failure);
      const p = new Promise<void>((resolve, reject) => (ready = { resolve, reject }));
      worker.postMessage({ type: 'open', path: file, append: o.append, prefixBytes: o.prefixBytes });
      return p;
    },
    write(chunk) {
      if (failure) return Promise.reject(failure);
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes < BATCH) return undefined;
      flush();
      if (inFlight < MAX_IN_FLIGHT) return undefined;
      return new Promise<void>((resolve, reject) => (waiter = { resolve, reject }));
    },
    finish() {
      if (failure) return Promise.reject(failure);
      flush();
      const p = new Promise<{ size: number; hex: Record<SinkAlgo, string> }>((resolve, reject) => (done = { resolve, reject }));
      worker.postMessage({ type: 'end' });
      return p;
    },
    async close() {
      finished = true;
      await worker.terminate();
    },
  };
}
