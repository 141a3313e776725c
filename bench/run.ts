/**
 * `npm run bench`: run every `*.bench.js` next to this file, one process each (a clean heap and
 * JIT state per question), in name order. `npm run bench -- rwlock` runs only files whose name
 * contains "rwlock".
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.js'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error(`bench: no benchmark matches ${filters.join(', ')}`);
  process.exit(2);
}
console.log(`# benchmarks on ${process.version}, ${(await import('node:os')).availableParallelism()} cores`);
let failures = 0;
for (const f of files) {
  console.log(`\n# ${f}`);
  const r = spawnSync(process.execPath, [join(here, f)], { stdio: 'inherit', timeout: 10 * 60_000 });
  if (r.status !== 0) {
    failures++;
    console.error(`bench ${f} failed (status ${r.status ?? r.signal ?? 'unknown'})`);
  }
}
process.exit(failures === 0 ? 0 : 1);
