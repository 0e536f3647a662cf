/** Options several commands share, declared once so their help lines agree. */
import type { OptionSpec } from './command.ts';
import { SERVED_SPEC } from '../layout.ts';

export const CONFIG = { type: 'string', short: 'c', arg: 'FILE', description: `the spec (else $PORTACLUSTER_CONFIG, ./portacluster.config.{ts,js,json}, <root>/${SERVED_SPEC})` } as const satisfies OptionSpec;
export const JSON_OUT = { type: 'boolean', description: 'print one JSON document on stdout (for scripts)' } as const satisfies OptionSpec;
export const ROOT = { type: 'string', arg: 'DIR', description: "the served tree (default: the spec's admin.servedRoot, /srv/public)" } as const satisfies OptionSpec;
export const STATE = { type: 'string', arg: 'FILE', description: 'the state file (else $PORTACLUSTER_STATE; default: state.json of the served tree, see README)' } as const satisfies OptionSpec;
export const SSH = { type: 'string', arg: 'HOST', description: 'act on node0 over ssh (--root then names the path there)' } as const satisfies OptionSpec;
export const SSH_CONFIG = { type: 'string', arg: 'FILE', description: 'ssh config file for --ssh (ssh -F)' } as const satisfies OptionSpec;
