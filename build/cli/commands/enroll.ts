/**
 * enroll <mac> --name NODE: a discovered machine becomes a node of the spec, from its inventory: firmware,
 * and an install disk selector that names exactly one of its disks. A JSON spec is edited in place (its
 * formatting kept, validated before it is written); for a TypeScript spec the entry is printed to paste.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { enrollJsonSpec, entryAsTs, nodeEntry, nodesLine, proposeDiskTarget, checkDuplicates } from '../../lifecycle/enroll.ts';
import { readInventory } from '../../lifecycle/inventory.ts';
import { defaultStateFile } from '../../lifecycle/state.ts';
import { UsageError } from '../../lib/errors.ts';
import { planCluster } from '../../plan/plan.ts';
import { loadSpec } from '../../spec/load.ts';
import { matches } from '../../spec/patterns.ts';
import { parseMac } from '../../spec/values.ts';
import { SERVED_SPEC } from '../../layout.ts';
import { defineCommand, emit } from '../command.ts';
import { configPath } from '../config-path.ts';
import { CONFIG, JSON_OUT, ROOT, STATE } from '../options.ts';

export const command = defineCommand(
  {
    name: 'enroll',
    positionals: '<mac>',
    summary: [
      'Add a discovered machine to the spec as a node, from the inventory it reported: its firmware, and a disk',
      'selector (by-id, else by-path) that matches exactly one of its disks when the cluster\'s disk.target would',
      'not. A JSON spec is edited in place (formatting and key order kept; validated first; written atomically); a',
      'TypeScript spec is printed as the entry to paste. A MAC, name or IP the spec already has is refused.',
      'Then build and deploy, and `portacluster reimage <name> --reboot` installs it.',
    ].join('\n'),
    options: {
      config: CONFIG,
      root: ROOT,
      state: STATE,
      name: { type: 'string', arg: 'NODE', description: 'the new node\'s host name (required)' },
      ip: { type: 'string', arg: 'IP', description: 'its fixed IP (server DHCP mode)' },
      profile: { type: 'string', arg: 'PROFILE', description: 'what its link points at after the build (default: boot.default)' },
      'dry-run': { type: 'boolean', description: 'print the entry and the disk choice, change nothing' },
      json: JSON_OUT,
    },
    examples: ['portacluster enroll 52:54:00:12:34:56 --name node7 --ip 192.168.10.17', 'portacluster enroll 52:54:00:12:34:56 --name node7 --dry-run'],
  },
  async (values, positionals) => {
    if (positionals.length !== 1) throw new UsageError('enroll takes one MAC\n  see: portacluster enroll --help');
    const mac = parseMac(positionals[0]!);
    if (!mac) throw new UsageError(`not a MAC address: ${JSON.stringify(positionals[0])}`);
    if (!values.name) throw new UsageError('enroll needs --name NODE (the new node\'s host name)');
    if (!matches('hostLabel', values.name)) throw new UsageError(`--name ${JSON.stringify(values.name)}: not an RFC 1123 host name label (lowercase letters, digits and inner hyphens)`);
    if (values.ip !== undefined && !matches('ipv4', values.ip)) throw new UsageError(`--ip ${JSON.stringify(values.ip)}: not an IPv4 address`);
    if (values.profile !== undefined && !matches('profile', values.profile)) throw new UsageError(`--profile ${JSON.stringify(values.profile)}: not a profile name`);
    const file = configPath(values.config, { root: values.root });
    if (resolve(file).endsWith(SERVED_SPEC)) throw new UsageError(`${file} is the copy a build shipped in the served tree; enroll edits your spec\n  hint: give it with --config FILE`);
    const loaded = await loadSpec(file);
    const plan = planCluster(loaded.spec);
    const root = values.root ?? plan.admin.servedRoot;
    const stored = await readInventory(values.state ?? defaultStateFile(root, plan.admin.servedRoot), mac);
    if (!stored) throw new UsageError(`no inventory from ${mac}: it has not booted the discover profile here\n  hint: portacluster discovered lists the machines that reported`);
    const disk = proposeDiskTarget(stored.inventory, plan.disk.target, plan.disk.minBytes);
    const entry = nodeEntry({ name: values.name, mac, ...(values.ip ? { ip: values.ip } : {}), ...(values.profile ? { profile: values.profile } : {}) }, stored.inventory, disk);
    checkDuplicates(loaded.raw as Parameters<typeof checkDuplicates>[0], entry);
    const isJson = /\.json$/i.test(file);
    let written = false;
    if (isJson && !values['dry-run']) {
      await enrollJsonSpec(file, entry);
      written = true;
    }
    const line = isJson ? null : nodesLine(await readFile(file, 'utf8'));
    const lines = [
      `install disk: ${disk.disk.name} (${disk.disk.sizeBytes ?? '?'} bytes${disk.disk.model ? `, ${disk.disk.model}` : ''}${disk.disk.serial ? `, serial ${disk.disk.serial}` : ''})${disk.diskTarget ? '' : " — the cluster's disk.target picks it"}`,
      ...disk.warnings.map((w) => `warning: ${w}`),
      written
        ? `added ${entry.name} to ${file}`
        : isJson
          ? `would add to ${file}:\n  ${JSON.stringify(entry)}`
          : `${file} is TypeScript: add this entry to its nodes: [ … ]${line ? ` (line ${line})` : ''}:\n  ${entryAsTs(entry)}`,
      `next: portacluster build, deploy it, then portacluster reimage ${entry.name} --reboot`,
    ];
    emit(!!values.json, { file, written, entry, disk: { name: disk.disk.name, selector: disk.diskTarget ?? null, clusterMatches: disk.clusterMatches }, warnings: disk.warnings }, lines.join('\n'));
    return 0;
  },
);
