/** etc/nginx.conf: serves the dist/ tree (= /srv/public) and proxies the installers' reports to the watcher. */
import { commentText, nginxValue as v } from '../lib/escape.ts';
import type { Plan } from '../plan/plan.ts';
import { ETC_DIR, RUNS_DIR, STATUS_PATH, runPath } from '../layout.ts';

/**
 * Where nginx keeps its own files and which tree it serves. The generated etc/nginx.conf is node0's whole
 * nginx config (the seed's shape) with the distribution's paths; `portacluster serve` renders the same
 * config with paths of its own run directory, so it never collides with a system nginx.
 */
export interface NginxRuntime {
  root: string;
  pid: string;
  /** A file, or `stderr` (serve prefixes it with the service name). */
  errorLog: string;
  accessLog: string;
}

/**
 * The access-log format every portacluster nginx logs in (node0's and each boot server's), named in their
 * `access_log … portacluster` lines; lifecycle/tail.ts parses it for `watch --access-log`.
 */
export const ACCESS_LOG_FORMAT =
  "log_format portacluster '$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\" $request_time';";

export function nodeNginxRuntime(plan: Plan): NginxRuntime {
  return { root: plan.admin.servedRoot, pid: '/run/nginx.pid', errorLog: '/var/log/nginx/error.log', accessLog: '/var/log/nginx/access.log' };
}

/**
 * The log_format and the server block alone: what a shared node0 drops into /etc/nginx/conf.d/ (the
 * distribution's http {} includes it), and the body of the whole config below, so both come from here.
 * The access log is set inside the server block, so on a shared nginx it applies to our site only.
 */
// Every value from the plan goes through v() (or commentText() in a comment): one nginx word each.
export function renderNginxServer(plan: Plan, rt: Pick<NginxRuntime, 'root' | 'accessLog'> = nodeNginxRuntime(plan)): string[] {
  const ip = v('admin.ip', plan.admin.ip);
  const hostname = v('admin.hostname', plan.admin.hostname);
  return [
    '# `portacluster watch --access-log` reads this format; it is nginx\'s combined plus the request time.',
    ACCESS_LOG_FORMAT,
    '',
    'server {',
    `    listen ${ip}:80 default_server;`,
    `    server_name ${hostname}.${v('domain', plan.domain)} ${hostname} ${ip};`,
    `    root ${v('admin.servedRoot', rt.root)};`,
    `    access_log ${v('access_log', rt.accessLog)} portacluster;`,
    '',
    '    location / {',
    '        autoindex on;',
    '    }',
    '',
    "    # node0's own configs are deployed with the tree but are not the nodes' business.",
    `    location /${v('layout', ETC_DIR)}/ {`,
    '        deny all;',
    '    }',
    '',
    ...bootServerRealIp(plan),
    ...runFileLocations(plan.nodes),
    `    location ${v('phoneHome.path', plan.phoneHome.path)}/ {`,
    `        proxy_pass http://127.0.0.1:${v('phoneHome.watcherPort', String(plan.phoneHome.watcherPort))};`,
    '        proxy_set_header X-Real-IP $remote_addr;',
    '        client_max_body_size 16m;',
    '    }',
    '',
    "    # The watcher's live status page: read-only (limit_except GET allows HEAD too); its event stream",
    '    # must reach the browser as it happens, and may stay open for hours.',
    `    location ${v('status path', STATUS_PATH)}/ {`,
    '        limit_except GET {',
    '            deny all;',
    '        }',
    `        proxy_pass http://127.0.0.1:${v('phoneHome.watcherPort', String(plan.phoneHome.watcherPort))};`,
    '        proxy_http_version 1.1;',
    "        proxy_set_header Connection '';",
    '        proxy_buffering off;',
    '        proxy_read_timeout 1h;',
    '    }',
    '}',
  ];
}

/**
 * A boot server passes its nodes' reports and run-file requests on with X-Forwarded-For set to the node's
 * address (render/nginx-bootserver.ts, from its own connection, never the node's header): node0 takes it
 * as the client's address from the servers' backbone addresses alone, so the run files' allow lines, the
 * access log and the watcher's X-Real-IP see the node, not its server.
 */
function bootServerRealIp(plan: Plan): string[] {
  if (plan.bootServers.length === 0) return [];
  return [
    "    # Requests the boot servers pass on carry the node's address; nobody else's header is believed.",
    ...plan.bootServers.map((b) => `    set_real_ip_from ${v(`bootServers[${b.name}].backboneIp`, b.backboneIp)};`),
    '    real_ip_header X-Forwarded-For;',
    '',
  ];
}

/**
 * Each node's run file (its install run's nonce, lifecycle/runs.ts) goes only to the node's fixed IP; a node
 * without one (proxy DHCP) gets it by its MAC alone. Anything else under the directory, its listing
 * included, is denied. `serve` is what a location does once allowed: nothing more on node0 (the file is
 * on its disk), a proxy_pass to node0 on a boot server.
 */
export function runFileLocations(nodes: readonly Pick<Plan['nodes'][number], 'name' | 'mac' | 'ip'>[], serve: string[] = []): string[] {
  return [
    "    # Install nonces: each node's run file only to the node's own address (lifecycle/runs.ts says what this protects).",
    `    location /${v('runs', RUNS_DIR)}/ {`,
    '        deny all;',
    '    }',
    ...nodes.flatMap((n) => [
      `    location = /${v(`nodes[${n.name}].mac`, runPath(n.mac))} {`,
      ...(n.ip ? [`        allow ${v(`nodes[${n.name}].ip`, n.ip)};`, '        deny all;'] : [`        # ${commentText('nginx.conf', 'nodes[].name', n.name)}: no fixed IP (proxy DHCP), so by MAC alone`]),
      ...serve.map((l) => `        ${l}`),
      '    }',
    ]),
    '',
  ];
}

/** The server block as a conf.d snippet for an nginx that serves other sites too (shared node0). */
export function renderNginxSnippet(plan: Plan, rt: Pick<NginxRuntime, 'root' | 'accessLog'> = nodeNginxRuntime(plan)): string {
  return [`# portacluster ${commentText('nginx.conf', 'cluster', plan.cluster)}: site for ${commentText('nginx.conf', 'admin.hostname', plan.admin.hostname)} — generated; do not edit. Spec ${plan.specHash.slice(0, 16)}.`, ...renderNginxServer(plan, rt), ''].join('\n');
}

/** The http {} settings every portacluster nginx shares (node0's and a boot server's): types, sendfile, no keep-alive. */
export function renderNginxHttpCommon(): string[] {
  return [
    'types {',
    '    text/plain txt cfg sh ipxe;',
    '    application/json json;',
    '    application/octet-stream bin img iso sfs dat zst;',
    '}',
    'default_type application/octet-stream;',
    'sendfile on;',
    'tcp_nopush on;',
    '# Nodes fetch with simple clients that hang on kept-alive connections (see the original setup).',
    'keepalive_timeout 0;',
  ];
}

export function renderNginxConf(plan: Plan, rt: NginxRuntime = nodeNginxRuntime(plan)): string {
  return nginxMainConf(`nginx for ${commentText('nginx.conf', 'admin.hostname', plan.admin.hostname)}`, plan, rt, renderNginxServer(plan, rt));
}

/** The whole file around one server block: node0's nginx.conf and a boot server's share it. */
export function nginxMainConf(what: string, plan: Plan, rt: Pick<NginxRuntime, 'pid' | 'errorLog'>, server: string[]): string {
  return [
    `# portacluster ${commentText('nginx.conf', 'cluster', plan.cluster)}: ${what} — generated; do not edit. Spec ${plan.specHash.slice(0, 16)}.`,
    'worker_processes 1;',
    `pid ${v('pid', rt.pid)};`,
    `error_log ${v('error_log', rt.errorLog)};`,
    '',
    'events {',
    '    worker_connections 1024;',
    '}',
    '',
    'http {',
    ...renderNginxHttpCommon().map((l) => `    ${l}`),
    ...server.map((l) => (l ? `    ${l}` : l)),
    '}',
    '',
  ].join('\n');
}
