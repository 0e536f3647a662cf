/**
 * A boot server's nginx: the second tier between node0 and the nodes of one rack (issue 17). It serves the
 * small files (scripts, boot configs, pxe/'s kernels and initramfs, which its TFTP needs anyway) from its
 * own copy of the tree, and the large content-addressed ones (layout.ts CONTENT_ADDRESSED_DIRS) through a
 * proxy_cache of node0, so an image crosses the backbone once per server however many nodes ask at once.
 * Reports and run files (runs/<mac>, each still only to its node's address) go on to node0, whose nginx
 * takes the node's address from X-Forwarded-For because the request comes from the server's backbone
 * address (proxy_bind; render/nginx.ts set_real_ip_from) and hands reports to the watcher.
 *
 * What makes "once" and "never truncated" hold (each tested with a real nginx in test/nginx-bootserver.test.ts):
 * - proxy_cache_lock: the first request for a missing file fetches it; the others wait for the cache entry.
 *   Its lock_timeout and lock_age default to 5 s, after which waiters go to node0 themselves (and the
 *   fetch is not cached): both are set far above the time one image takes over the backbone.
 * - A fetch that ends early is not cached: nginx stores a response only when the bytes it read equal the
 *   origin's Content-Length. node0's nginx always sends one for a static file; a response without one
 *   (close-delimited, where an early close looks like the end) is refused for the cache by $pc_no_length.
 *   The node that asked first sees its connection closed short of the Content-Length it was given (curl
 *   exits 18) and the waiters retry against node0; the installer's digest check is the last line.
 * - proxy_read_timeout: a node0 that stops sending without closing fails the fetch and frees the lock.
 */
import { CONTENT_ADDRESSED_DIRS, ETC_DIR } from '../layout.ts';
import { commentText, nginxValue as v } from '../lib/escape.ts';
import type { PlanBootServer } from '../plan/boot-servers.ts';
import type { Plan, PlanNode } from '../plan/plan.ts';
import { ACCESS_LOG_FORMAT, nginxMainConf, runFileLocations, type NginxRuntime } from './nginx.ts';

/** One boot server as its nginx sees it. */
export interface BootServerSite {
  name: string;
  /** The address the rack's nodes reach it at (its cluster interface). */
  listen: string;
  /** node0 on the backbone, as `host` or `host:port`: the origin of the cached files and of the watcher. */
  origin: string;
  /**
   * Its own backbone address, the source of every request it makes to node0 (proxy_bind): node0 believes the
   * X-Forwarded-For of these addresses only (render/nginx.ts), so it must not depend on the route's choice.
   */
  backbone: string;
  /** The nodes behind it: their run files go to each node's own address only, as on node0. */
  nodes: readonly Pick<PlanNode, 'name' | 'mac' | 'ip'>[];
}

/** A planned server's site: it listens on its rack address; node0's nginx (admin.ip:80) is its origin. */
export const bootServerSite = (plan: Plan, server: PlanBootServer): BootServerSite => ({
  name: server.name,
  listen: server.ip,
  origin: plan.admin.ip,
  backbone: server.backboneIp,
  nodes: plan.nodes.filter((n) => n.bootServer === server.name),
});

export interface BootServerRuntime extends NginxRuntime {
  /** proxy_cache_path: on the filesystem that holds the images (temp files are written in place). */
  cacheDir: string;
  /** proxy_cache_path max_size, in nginx's size syntax (e.g. `20g`): a few releases' images. */
  cacheMaxSize: string;
}

/** The upper bound a node waits for another's fetch of the same file before nginx would let it go to node0 uncached. */
export const CACHE_LOCK_WAIT = '1h';
/** How long node0 may go silent within one fetch before it is failed and the lock freed for a retry. */
export const ORIGIN_READ_TIMEOUT = '60s';

export function bootServerNginxRuntime(plan: Plan, cacheDir = '/var/cache/portacluster/images'): BootServerRuntime {
  return { root: plan.admin.servedRoot, pid: '/run/nginx.pid', errorLog: '/var/log/nginx/error.log', accessLog: '/var/log/nginx/access.log', cacheDir, cacheMaxSize: '20g' };
}

// Every value from the plan or the server goes through v() (or commentText() in a comment): one nginx word each.
export function renderBootServerNginxServer(plan: Plan, site: BootServerSite, rt: BootServerRuntime): string[] {
  const origin = `http://${v('bootServers[].origin', site.origin)}`;
  const cached = CONTENT_ADDRESSED_DIRS.flatMap((dir) => [
    `    location /${v('layout', dir)}/ {`,
    `        proxy_pass ${origin};`,
    "        # node0's log names the node whose request filled the cache (never an address the node wrote).",
    '        proxy_set_header X-Forwarded-For $remote_addr;',
    '        proxy_cache pc_images;',
    '        # The path names the bytes: a query string must not make a second copy (or a second fetch).',
    '        proxy_cache_key $uri;',
    '        proxy_cache_valid 200 30d;',
    '        proxy_cache_lock on;',
    `        proxy_cache_lock_timeout ${CACHE_LOCK_WAIT};`,
    `        proxy_cache_lock_age ${CACHE_LOCK_WAIT};`,
    '        proxy_no_cache $pc_no_length;',
    '        # node0 sends no caching headers for static files; a stray one must not shorten or skip the cache.',
    '        proxy_ignore_headers Cache-Control Expires Set-Cookie Vary X-Accel-Expires;',
    `        proxy_read_timeout ${ORIGIN_READ_TIMEOUT};`,
    '        add_header X-Cache-Status $upstream_cache_status always;',
    '    }',
    '',
  ]);
  return [
    ACCESS_LOG_FORMAT,
    '',
    `proxy_cache_path ${v('cacheDir', rt.cacheDir)} levels=1:2 keys_zone=pc_images:10m max_size=${v('cacheMaxSize', rt.cacheMaxSize)} inactive=30d use_temp_path=off;`,
    '# 1 when node0 sent no Content-Length: an early close would then look like the end of the file.',
    'map $upstream_http_content_length $pc_no_length {',
    '    "" 1;',
    '    default 0;',
    '}',
    '',
    'server {',
    `    listen ${v('bootServers[].listen', site.listen)}:80 default_server;`,
    `    server_name ${v('bootServers[].name', site.name)} ${v('bootServers[].listen', site.listen)};`,
    `    root ${v('admin.servedRoot', rt.root)};`,
    `    access_log ${v('access_log', rt.accessLog)} portacluster;`,
    '',
    `    proxy_bind ${v('bootServers[].backboneIp', site.backbone)};`,
    '',
    '    location / {',
    '        autoindex on;',
    '    }',
    '',
    "    # node0's own configs travel with the tree but are not the nodes' business.",
    `    location /${v('layout', ETC_DIR)}/ {`,
    '        deny all;',
    '    }',
    '',
    ...cached,
    // Run files live on node0 (reimage writes them there): each goes on to node0 for its own node only,
    // with the node's address for node0's allow line (the node's own X-Forwarded-For is overwritten).
    ...runFileLocations(site.nodes, [`proxy_pass ${origin};`, 'proxy_set_header X-Forwarded-For $remote_addr;']),
    "    # Reports go on to node0's nginx, which hands them to the watcher.",
    `    location ${v('phoneHome.path', plan.phoneHome.path)}/ {`,
    `        proxy_pass ${origin};`,
    '        proxy_set_header X-Forwarded-For $remote_addr;',
    '        proxy_buffering off;',
    '        client_max_body_size 16m;',
    '    }',
    '}',
  ];
}

export function renderBootServerNginxConf(plan: Plan, site: BootServerSite, rt: BootServerRuntime = bootServerNginxRuntime(plan)): string {
  return nginxMainConf(`nginx for boot server ${commentText('nginx.conf', 'bootServers[].name', site.name)}`, plan, rt, renderBootServerNginxServer(plan, site, rt));
}
