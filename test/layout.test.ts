import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as layout from '../build/layout.ts';

const BUILD = fileURLToPath(new URL('../build/', import.meta.url));

// The spellings the loaders, nginx and node0's tools look for: written out once here, against the module.
describe('the served tree layout', () => {
  it('names the per-MAC links as pxelinux and iPXE look them up', () => {
    expect(layout.pxelinuxNodeFile('c0:3f:d5:60:e5:a1')).toBe('01-c0-3f-d5-60-e5-a1');
    expect(layout.ipxeNodeFile('c0:3f:d5:60:e5:a1')).toBe('01-c0-3f-d5-60-e5-a1.ipxe');
    expect(layout.pxelinuxPath(layout.pxelinuxNodeFile('aa:bb:cc:dd:ee:ff'))).toBe('pxe/pxelinux.cfg/01-aa-bb-cc-dd-ee-ff');
    expect(layout.ipxePath(layout.ipxeNodeFile('aa:bb:cc:dd:ee:ff'))).toBe('pxe/ipxe/01-aa-bb-cc-dd-ee-ff.ipxe');
    expect(layout.IPXE_NODE_EXPANSION).toBe('01-${netX/mac:hexhyp}.ipxe');
  });

  it('tells per-MAC link names from profile names', () => {
    for (const name of ['01-c0-3f-d5-60-e5-a1', '01-c0-3f-d5-60-e5-a1.ipxe']) expect(layout.isNodeLinkName(name), name).toBe(true);
    for (const name of ['default', 'installer', 'installer.ipxe', '01-c0-3f-d5-60-e5', '01-C0-3F-D5-60-E5-A1', '.01-c0-3f-d5-60-e5-a1.tmp-1-0', '01-c0-3f-d5-60-e5-a1.ipxe.tmp'])
      expect(layout.isNodeLinkName(name), name).toBe(false);
    for (const { dir, glob } of layout.NODE_LINK_GLOBS) expect(dir.startsWith(`${layout.PXE_DIR}/`) && glob.startsWith('01-')).toBe(true);
  });

  it('places files and their URLs', () => {
    expect([layout.SERVED_SPEC, layout.DNSMASQ_CONF, layout.NGINX_CONF, layout.SUMS_FILE, layout.MANIFEST_FILE]).toEqual([
      'etc/portacluster.json',
      'etc/dnsmasq.conf',
      'etc/nginx.conf',
      'SHA256SUMS',
      'manifest.json',
    ]);
    expect(layout.autorunPath('installer')).toBe('installer/autorun');
    expect(layout.urlFor('http://10.0.0.1', layout.imagePath('os.tar.zst'))).toBe('http://10.0.0.1/images/os.tar.zst');
    expect(layout.urlFor('http://10.0.0.1', layout.pxePath('debian-kernel'))).toBe('http://10.0.0.1/pxe/debian-kernel');
    expect(layout.SYSRCD_LEGACY_ROOT).toBe('sysrcd/sysrcd.dat');
  });
});

/** Path literals of the served tree, in code (comments and prose in messages are not paths). */
const TREE_PATH = /['`"](pxe|images|sysrcd|installer|rescue|diskless)\/|etc\/(portacluster|nginx|dnsmasq)|['`"](SHA256SUMS|manifest\.json)['`"]|['`"]01-|pxe\/pxelinux\.cfg|pxe\/ipxe/;
const stripComments = (s: string) => s.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
const treePathLines = (text: string) => stripComments(text).split('\n').filter((l) => TREE_PATH.test(l));

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

describe('one owner for the layout', () => {
  it('the scan sees a path spelled outside the layout module', () => {
    expect(treePathLines("const f = join(staging, 'pxe/pxelinux.cfg', name); // why")).toHaveLength(1);
    expect(treePathLines("await writeText(staging, 'installer/autorun', text);")).toHaveLength(1);
    expect(treePathLines('/** writes pxe/pxelinux.cfg/<profile> */\nconst x = 1;')).toEqual([]);
  });

  it('no module under build/ but build/layout.ts spells a path of the served tree', () => {
    const found = tsFiles(BUILD)
      .filter((f) => !f.endsWith('/build/layout.ts'))
      .flatMap((f) => treePathLines(readFileSync(f, 'utf8')).map((l) => `${f.slice(BUILD.length)}: ${l.trim()}`));
    expect(found).toEqual([]);
  });
});
