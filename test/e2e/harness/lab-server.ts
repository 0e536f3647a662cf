/**
 * Runs inside the lab's network namespace (`ip netns exec NS node --import tsx lab-server.ts …`):
 * - the phone-home listener behind nginx's proxy_pass (127.0.0.1:<watcherPort>), recording every report;
 * - the flaky image server on <adminIp>:<flakyPort> that breaks its first downloads midway.
 * Each event is one JSON line on stdout, read by the harness.
 */
import { createServer } from 'node:http';
import { flakyServer } from './flaky-server.ts';

const [watcherPort, adminIp, flakyPort, root, drops] = process.argv.slice(2);
const emit = (e: Record<string, unknown>) => process.stdout.write(JSON.stringify({ ...e, at: Date.now() }) + '\n');

createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const url = new URL(req.url ?? '/', 'http://x');
    emit({
      kind: 'report',
      method: req.method,
      phase: url.pathname.split('/').filter(Boolean).at(-1),
      host: url.searchParams.get('host'),
      mac: url.searchParams.get('mac'),
      failedPhase: url.searchParams.get('phase'),
      query: Object.fromEntries(url.searchParams),
      body: Buffer.concat(chunks).toString('utf8').slice(-65536),
    });
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
  });
}).listen(Number(watcherPort), '127.0.0.1', () => emit({ kind: 'listening', what: 'reports' }));

flakyServer({ root: root!, drops: Number(drops), dropAt: 0.3, onEvent: (e) => emit({ kind: 'flaky', ...e }) }).listen(Number(flakyPort), adminIp, () =>
  emit({ kind: 'listening', what: 'flaky' }),
);
