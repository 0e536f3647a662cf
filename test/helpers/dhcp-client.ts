/**
 * A DHCP client for network-namespace tests: busybox udhcpc asks (DISCOVER, then REQUEST for the offer it
 * picks, with a timeout), and beside it a receive-only packet listener records EVERY DHCP reply that reaches
 * the client's interface (udhcpc shows only the offer it chose; with two servers on a wire both matter).
 * Both run inside the client's own namespace; nothing here touches the host's interfaces.
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../build/lib/run.ts';

/** Every BOOTP reply (to port 68) on the interface for `secs` seconds, one JSON line each. */
const LISTENER = `
import socket, struct, sys, time, json
ifname, secs = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind((ifname, 0))
s.settimeout(0.2)
end = time.monotonic() + secs
print(json.dumps({'ready': True}), flush=True)
while time.monotonic() < end:
    try:
        f = s.recv(2048)
    except socket.timeout:
        continue
    ip = f[14:]
    if len(ip) < 20 or ip[9] != 17:
        continue
    ihl = (ip[0] & 15) * 4
    if struct.unpack('!H', ip[ihl + 2:ihl + 4])[0] != 68:
        continue
    b = ip[ihl + 8:]
    if len(b) < 240 or b[0] != 2 or b[236:240] != b'\\x63\\x82\\x53\\x63':
        continue
    opts, i = {}, 240
    while i + 1 < len(b) and b[i] != 255:
        if b[i] == 0:
            i += 1
            continue
        opts[b[i]] = b[i + 2:i + 2 + b[i + 1]]
        i += 2 + b[i + 1]
    ntoa = socket.inet_ntoa
    print(json.dumps({
        'type': {2: 'offer', 5: 'ack', 6: 'nak'}.get(opts.get(53, b'\\0')[0], 'other'),
        'server': ntoa(opts[54]) if 54 in opts else ntoa(ip[12:16]),
        'yiaddr': ntoa(b[16:20]), 'siaddr': ntoa(b[20:24]),
        'file': b[108:236].split(b'\\0')[0].decode('latin1') or (opts[67].decode('latin1') if 67 in opts else ''),
        'vendor': opts[60].decode('latin1') if 60 in opts else None,
        'pxeOptions': 43 in opts,
    }), flush=True)
`;

export interface DhcpReply {
  type: 'offer' | 'ack' | 'nak' | 'other';
  server: string;
  yiaddr: string;
  siaddr: string;
  file: string;
  vendor: string | null;
  pxeOptions: boolean;
}

export interface DhcpResult {
  /** Every reply seen on the wire, in arrival order. */
  replies: DhcpReply[];
  /** The server udhcpc selected ("broadcasting select for X, server Y"), if any offer reached it. */
  selected: { ip: string; server: string } | null;
  /** The lease udhcpc got (its script's `bound` line), if any. */
  bound: Record<string, string> | null;
  /** ms from the first DISCOVER until the first reply (null: none). */
  firstReplyMs: number | null;
  log: string;
}

/** Writes udhcpc's event script (it prints what the server sent) into dir; returns its path. */
export async function udhcpcScript(dir: string): Promise<string> {
  const file = join(dir, 'udhcpc-event.sh');
  await writeFile(file, '#!/bin/sh\necho "EVENT $1 ip=$ip siaddr=$siaddr boot_file=$boot_file serverid=$serverid"\n', { mode: 0o755 });
  return file;
}

/**
 * One DHCP exchange from namespace `ns` on `iface`. `pxe` makes the client look like PXE firmware: vendor
 * class PXEClient (option 60), client arch 0 = BIOS (option 93), a machine UUID (option 97), which is
 * what dnsmasq's proxy mode answers.
 */
export async function dhcpExchange(ns: string, iface: string, script: string, o: { pxe?: boolean; tries?: number } = {}): Promise<DhcpResult> {
  const tries = o.tries ?? 3;
  const listenSecs = tries + 2;
  const listener = spawn('ip', ['netns', 'exec', ns, 'python3', '-c', LISTENER, iface, String(listenSecs)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: { at: number; line: string }[] = [];
  let buf = '';
  let ready!: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  listener.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) {
      const line = buf.slice(0, i);
      if (line.includes('"ready"')) ready();
      else lines.push({ at: Date.now(), line });
    }
  });
  const listenerDone = new Promise<void>((r) => listener.once('close', () => r()));
  await Promise.race([isReady, listenerDone]);
  const pxeArgs = o.pxe ? ['-V', 'PXEClient:Arch:00000:UNDI:002001', '-x', '0x5d:0000', '-x', '0x61:00112233445566778899aabbccddeeff00'] : [];
  // -n: exit when no lease; -q: exit once bound; -f: foreground; -t/-T: `tries` DISCOVERs one second apart.
  const started = Date.now();
  const r = await run(['ip', 'netns', 'exec', ns, 'timeout', String(tries * 3 + 5), 'busybox', 'udhcpc', '-i', iface, '-n', '-q', '-f', '-t', String(tries), '-T', '1', '-A', '1', '-s', script, ...pxeArgs], { nothrow: true });
  // Replies come within ms of a request: 1.5 s after udhcpc ends, the wire has said everything (also on a loaded machine).
  await Promise.race([listenerDone, new Promise((r) => setTimeout(r, 1500))]);
  listener.kill('SIGTERM');
  await listenerDone;
  const log = r.stdout + r.stderr;
  const sel = /select for (\S+), server (\S+)/.exec(log);
  const boundLine = /^EVENT bound (.*)$/m.exec(log);
  const bound = boundLine ? Object.fromEntries(boundLine[1]!.split(' ').map((kv) => kv.split('=') as [string, string])) : null;
  return {
    replies: lines.map((l) => JSON.parse(l.line) as DhcpReply),
    selected: sel ? { ip: sel[1]!, server: sel[2]! } : null,
    bound,
    firstReplyMs: lines.length ? lines[0]!.at - started : null,
    log,
  };
}

/** A namespace holding one end of a veth whose other end joins `bridge` in namespace `hostNs`. */
export async function vethClient(hostNs: string, bridge: string, ns: string, hostEnd: string, mac: string): Promise<void> {
  await run(['ip', 'netns', 'del', ns], { nothrow: true });
  await run(['ip', 'netns', 'add', ns]);
  await run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  await run(['ip', '-n', hostNs, 'link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  await run(['ip', '-n', hostNs, 'link', 'set', hostEnd, 'master', bridge, 'up']);
  await run(['ip', '-n', ns, 'link', 'set', 'eth0', 'address', mac, 'up']);
}
