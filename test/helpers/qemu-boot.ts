/**
 * Boots a kernel + initramfs in QEMU (TCG, user-mode networking) against an autorun directory served on
 * 127.0.0.1 (10.0.2.2 from the guest). Used by the installer environment's e2e test and its benchmark.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { run } from '../../build/lib/run.ts';
import { tail } from '../../build/lib/errors.ts';

export interface ServedRequest {
  path: string;
  status: number;
  /** ms since the server started. */
  at: number;
}

export interface AutorunServer {
  port: number;
  /** Date.now() when the server started listening; `requests[].at` counts from it. */
  startedAt: number;
  /** The served table: add or replace entries while the server runs. */
  files: Record<string, string | { file: string }>;
  /** The guest's view of `prefix`: `http://10.0.2.2:<port>/<prefix>/`. */
  guestUrl: (prefix: string) => string;
  requests: ServedRequest[];
  /** Resolves when a request for `path` arrives (or has arrived). */
  requested: (path: string) => Promise<ServedRequest>;
  close: () => Promise<void>;
}

/** Serves `files` (URL path → body or local file) and 404s everything else, recording every request. */
export async function serveFiles(files: Record<string, string | { file: string }>): Promise<AutorunServer> {
  const started = Date.now();
  const requests: ServedRequest[] = [];
  const waiters: Array<{ path: string; resolve: (r: ServedRequest) => void }> = [];
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const entry = files[path];
    const record = (status: number) => {
      const r = { path, status, at: Date.now() - started };
      requests.push(r);
      for (const w of waiters.filter((w) => w.path === path)) w.resolve(r);
    };
    if (entry === undefined) {
      record(404);
      res.writeHead(404).end('not found\n');
      return;
    }
    const body = typeof entry === 'string' ? Promise.resolve(Buffer.from(entry)) : readFile(entry.file);
    body.then(
      (b) => {
        record(200);
        res.writeHead(200, { 'content-length': b.length }).end(b);
      },
      () => {
        record(500);
        res.writeHead(500).end();
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    startedAt: started,
    files,
    guestUrl: (prefix) => `http://10.0.2.2:${port}/${prefix.replace(/^\/|\/$/g, '')}/`,
    requests,
    requested: (path) => {
      const done = requests.find((r) => r.path === path);
      return done ? Promise.resolve(done) : new Promise((resolve) => waiters.push({ path, resolve }));
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface BootOptions {
  /** Direct kernel boot; without it the NIC's iPXE ROM boots from the network (see `tftpDir`). */
  kernel?: string;
  initramfs?: string;
  append?: string;
  /** Network boot: qemu's built-in TFTP server root and the boot file its DHCP hands out. */
  tftpDir?: string;
  bootfile?: string;
  serialLog: string;
  memoryMiB?: number;
  timeoutMs: number;
  /** NICs in PCI order; the default is one virtio NIC with MAC 52:54:00:12:34:56. */
  macs?: string[];
}

export interface BootResult {
  /** qemu's exit code (0 after the guest powers off); null when killed by the timeout. */
  exitCode: number | null;
  timedOut: boolean;
  seconds: number;
  serial: string;
}

export function qemuArgs(o: BootOptions): string[] {
  const macs = o.macs ?? ['52:54:00:12:34:56'];
  return [
    'qemu-system-x86_64',
    '-accel', 'tcg',
    '-m', String(o.memoryMiB ?? 512),
    '-smp', '1',
    '-nodefaults',
    '-display', 'none',
    '-serial', `file:${o.serialLog}`,
    // The guest's poweroff and reboot both end qemu: the test's "done" signal.
    '-no-reboot',
    ...(o.kernel ? ['-kernel', o.kernel, '-initrd', o.initramfs ?? '', '-append', o.append ?? ''] : []),
    ...macs.flatMap((mac, i) => {
      const tftp = i === 0 && o.tftpDir ? `,tftp=${o.tftpDir},bootfile=${o.bootfile ?? ''}` : '';
      const boot = i === 0 && !o.kernel ? ',bootindex=1' : '';
      return ['-netdev', `user,id=n${i}${tftp}`, '-device', `virtio-net-pci,netdev=n${i},mac=${mac}${boot}`];
    }),
    // Without it the guest's entropy arrives ~36 s late.
    '-device', 'virtio-rng-pci',
  ];
}

export async function bootQemu(o: BootOptions): Promise<BootResult> {
  const started = Date.now();
  const r = await run(qemuArgs(o), { timeoutMs: o.timeoutMs, nothrow: true });
  const serial = await readFile(o.serialLog, 'utf8').catch(() => '');
  return {
    exitCode: r.exitCode,
    timedOut: r.signal !== null,
    seconds: (Date.now() - started) / 1000,
    serial,
  };
}

/** For failure messages: the last lines of the serial console. */
export function serialTail(serial: string, lines = 40): string {
  return tail(serial.replace(/\r/g, ''), lines);
}
