/** Writes schema/portacluster.schema.json, the editor schema for JSON specs. `npm run schema`. */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClusterSpecSchema } from './schema.ts';

export const SCHEMA_PATH = join(dirname(fileURLToPath(import.meta.url)), '../../schema/portacluster.schema.json');

export function schemaJson(): string {
  const schema = { $schema: 'http://json-schema.org/draft-07/schema#', $id: 'https://portacluster.dev/schema/portacluster.schema.json', ...ClusterSpecSchema };
  return JSON.stringify(schema, null, 2) + '\n';
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await mkdir(dirname(SCHEMA_PATH), { recursive: true });
  await writeFile(SCHEMA_PATH, schemaJson());
  console.log(`wrote ${SCHEMA_PATH}`);
}
