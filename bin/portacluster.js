#!/usr/bin/env node
// Runs the TypeScript CLI through tsx's loader, so the installed command and `npm run` share one code path.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../build/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
