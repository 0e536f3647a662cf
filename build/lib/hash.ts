/** SHA-256 of files and of JSON values: the digests the tree, the caches and the spec hash are made of. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';

/**
 * Stable JSON: object keys sorted by code unit, undefined members left out, no whitespace, so the same
 * value always hashes the same. Written out rather than via a JSON.stringify replacer: re-created
 * objects would enumerate integer-like keys ("9", "10") numerically, not in sorted order.
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return '[' + value.map(canonicalJson).join(',') + ']';
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return '{' + entries.map(([k, v]) => JSON.stringify(k) + ':' + canonicalJson(v)).join(',') + '}';
  }
  return JSON.stringify(value);
}

/** sha256 (hex) of a value's canonical JSON: cache keys and the spec hash. */
export function hashInputs(inputs: unknown): string {
  return sha256Text(canonicalJson(inputs));
}

export function sha256Text(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

/** sha256 (hex) of a file, streamed in 1 MiB reads (the default 64 KiB is slower on multi-GB images). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * sha256 (hex) and size of a file another process is still appending to, read behind the writer, so the
 * hash costs no time after the writer ends (pack-image: zstd writes the tarball itself). Only bytes
 * below the size fstat reports are read: Linux raises a file's size after it has copied the bytes the
 * new size covers, and an appending writer never rewrites them. Once `finished` settles, one last pass
 * reads to the end. `onBytes` hears the count as it grows (progress).
 */
export async function sha256Appended(path: string, finished: Promise<unknown>, onBytes?: (n: number) => void): Promise<{ sha256: string; size: number }> {
  const fh = await open(path, 'r');
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(4 << 20);
  let pos = 0;
  let ended = false;
  void finished.then(
    () => (ended = true),
    () => (ended = true),
  );
  try {
    for (;;) {
      // Taken before the size: when the writer had ended by then, this pass reads its last byte.
      const last = ended;
      const { size } = await fh.stat();
      while (pos < size) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - pos), pos);
        if (bytesRead === 0) break;
        hash.update(buf.subarray(0, bytesRead));
        pos += bytesRead;
      }
      onBytes?.(pos);
      if (last) return { sha256: hash.digest('hex'), size: pos };
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await fh.close();
  }
}
