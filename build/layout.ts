/**
 * The served tree's layout (dist/ = /srv/public on node0): the one owner of every directory and file name
 * in it, of the per-MAC link names both loaders look up, and of the URLs nodes fetch them by. Paths are
 * relative to the tree's root, with forward slashes, so they serve alike as file paths (join(root, p)), as
 * SHA256SUMS/manifest entries and as URL paths under httpBase. Sits at the bottom beside lib/: every
 * layer may import it, and it imports nothing.
 */

/** Where node0 serves the tree unless the spec's admin.servedRoot says otherwise. */
export const DEFAULT_SERVED_ROOT = '/srv/public';
/** The TFTP root (dnsmasq tftp-root): loaders, kernels, initrds and both loaders' config trees. */
export const PXE_DIR = 'pxe';
/** The network boot loaders in the TFTP root, by the host requirement that provides each; dnsmasq hands them out by name. */
export const LOADER_FILES = {
  pxelinux: 'pxelinux.0',
  ldlinuxBios: 'ldlinux.c32',
  syslinuxEfi: 'syslinux.efi',
  ldlinuxEfi: 'ldlinux.e64',
  ipxeBios: 'undionly.kpxe',
  ipxeEfi: 'snponly.efi',
} as const;
/** pxelinux.0 and syslinux.efi look their config up here, relative to the TFTP root. */
export const PXELINUX_DIR = `${PXE_DIR}/pxelinux.cfg`;
export const IPXE_DIR = `${PXE_DIR}/ipxe`;
/** The golden tarball, the ext4 image, the diskless squashfs and their .sha256 sidecars. */
export const IMAGES_DIR = 'images';
/**
 * The directories a boot server caches from node0 rather than holding a copy of: every name in them is
 * content-addressed (`<name>-<first 16 hex of the sha256>.tar.zst|.ext4.zst|.sfs`, and the `.sha256`
 * sidecar beside each), so the bytes behind a URL never change and a cached copy never goes stale. The
 * kernels and initramfs in pxe/ are not (fixed names such as `debian-kernel`, rewritten by each release),
 * and a boot server's TFTP needs them on its own disk anyway: they travel with its copy of the tree.
 */
export const CONTENT_ADDRESSED_DIRS: readonly string[] = [IMAGES_DIR];
/** SystemRescue's root image, fetched by netboot= (legacy) or archiso_http_srv= (modern). */
export const SYSRCD_DIR = 'sysrcd';
/** Legacy SystemRescueCd's root image and its checksum, as netboot= fetches them. */
export const SYSRCD_LEGACY_FILES = { root: 'sysrcd.dat', sums: 'sysrcd.md5' } as const;
export const SYSRCD_LEGACY_ROOT = `${SYSRCD_DIR}/${SYSRCD_LEGACY_FILES.root}`;
/** node0's own configs: deployed with the tree, denied to the nodes by nginx. */
export const ETC_DIR = 'etc';
export const DNSMASQ_CONF = `${ETC_DIR}/dnsmasq.conf`;
export const NGINX_CONF = `${ETC_DIR}/nginx.conf`;
/**
 * Each boot server's own tree, laid out exactly like node0's and carried in node0's dist/ under
 * etc/servers/<name>/ (so nginx denies it to the nodes like node0's configs): the files that name an
 * address — both loaders' profile files and per-MAC links for the server's nodes, the autorun scripts,
 * its own etc/dnsmasq.conf and etc/nginx.conf — rendered with the server's rack address. A server's
 * served root is that tree plus BOOT_SERVER_SHARED from node0's; what deploy copies to it.
 * The name is the server's name (a host name label).
 */
export const BOOT_SERVERS_DIR = `${ETC_DIR}/servers`;
export const bootServerDir = (name: string): string => `${BOOT_SERVERS_DIR}/${name}`;
/** A path of a boot server's tree (the same layout as node0's) as a path in node0's tree. */
export const bootServerPath = (name: string, path: string): string => `${bootServerDir(name)}/${path}`;
export const bootServerDnsmasqConf = (name: string): string => bootServerPath(name, DNSMASQ_CONF);
export const bootServerNginxConf = (name: string): string => bootServerPath(name, NGINX_CONF);
/** Every build ships its spec here, so node0's lifecycle commands find it in the served tree. */
export const SERVED_SPEC = `${ETC_DIR}/portacluster.json`;
export const MANIFEST_FILE = 'manifest.json';
export const SUMS_FILE = 'SHA256SUMS';
/**
 * Live per-node run files (written by reimage/rescue/diskless, never by a build): `runs/<mac with dashes>`
 * holds the node's current run id and nonce, fetched by its installer at start. nginx serves each only to
 * its node's fixed IP; deploys carry the directory over like the per-MAC links.
 */
export const RUNS_DIR = 'runs';
export const runFile = (mac: string): string => mac.replace(/:/g, '-');
export const runPath = (mac: string): string => `${RUNS_DIR}/${runFile(mac)}`;
/** Modern SystemRescue's rescue YAML (authorized_keys), served beside the rescue autorun. */
export const SYSRESCUE_YAML = 'rescue/sysrescue.yaml';

/**
 * What a boot server's copy takes from node0's tree byte for byte: the loaders, kernels and initramfs of
 * pxe/ (its TFTP serves them; not content-addressed, so not cached) but not the two loaders' config
 * directories, which name an address and come from its own tree (bootServerDir); and sysrcd/. Everything
 * else a server serves is its own tree, cached (CONTENT_ADDRESSED_DIRS) or proxied to node0 (runs/, reports).
 */
export const BOOT_SERVER_SHARED: readonly { dir: string; except: readonly string[] }[] = [
  { dir: PXE_DIR, except: [PXELINUX_DIR, IPXE_DIR] },
  { dir: SYSRCD_DIR, except: [] },
];

/**
 * A profile whose environment runs an autorun script (installer, rescue, diskless, or a test's installer
 * variant) fetches it from its own directory: the one SystemRescue's ar_source= names, to which it appends
 * "autorun", "autorun0"… itself.
 */
export const autorunDir = (profile: string): string => profile;
export const autorunPath = (profile: string): string => `${autorunDir(profile)}/autorun`;

/** A file in the TFTP root (kernels, initrds, loaders) as a tree path. */
export const pxePath = (fileName: string): string => `${PXE_DIR}/${fileName}`;
/** A file under images/ as a tree path. */
export const imagePath = (fileName: string): string => `${IMAGES_DIR}/${fileName}`;
export const pxelinuxPath = (name: string): string => `${PXELINUX_DIR}/${name}`;
export const ipxePath = (name: string): string => `${IPXE_DIR}/${name}`;

/** A tree path as the URL nodes fetch it by; a trailing slash on the path is kept (directories). */
export const urlFor = (httpBase: string, path: string): string => `${httpBase}/${path}`;

/** pxelinux looks up `01-<mac with dashes>` in pxelinux.cfg/ (01 = Ethernet ARP type). */
export function pxelinuxNodeFile(mac: string): string {
  return '01-' + mac.replace(/:/g, '-');
}
/** boot.ipxe chains `01-${netX/mac:hexhyp}.ipxe`: the pxelinux name plus .ipxe, so both switch together. */
export const ipxeNodeFile = (mac: string): string => `${pxelinuxNodeFile(mac)}.ipxe`;
/** A profile's file in pxelinux.cfg/ is its bare name; in ipxe/ it carries .ipxe. */
export const ipxeProfileFile = (profile: string): string => `${profile}.ipxe`;
/** What dnsmasq hands iPXE clients; it chains the per-MAC script, named by iPXE's own expansion. */
export const IPXE_BOOT_FILE = 'boot.ipxe';
export const IPXE_NODE_EXPANSION = '01-${netX/mac:hexhyp}.ipxe';
export const DEFAULT_LINK = 'default';
export const IPXE_DEFAULT_LINK = ipxeProfileFile(DEFAULT_LINK);

/**
 * The watcher's live status page, as a URL path on node0: nginx proxies it (GET/HEAD only) to the watcher
 * beside phoneHome.path. Fixed rather than a spec field: nothing on a node fetches it, and a bookmark should
 * survive a spec change. It is not a directory of the tree, and the spec rules keep phoneHome.path off it.
 */
export const STATUS_PATH = '/portacluster/status';

/** The per-MAC link names in either loader's directory: node0's live state, never dist/'s. */
const NODE_LINK = /^01-(?:[0-9a-f]{2}-){5}[0-9a-f]{2}(?:\.ipxe)?$/;
export const isNodeLinkName = (name: string): boolean => NODE_LINK.test(name);
/** The per-MAC link names as shell globs, per directory (rsync --exclude, the deploy's carry-over loop). */
export const NODE_LINK_GLOBS: readonly { dir: string; glob: string }[] = [
  { dir: PXELINUX_DIR, glob: '01-*' },
  { dir: IPXE_DIR, glob: '01-*.ipxe' },
];
