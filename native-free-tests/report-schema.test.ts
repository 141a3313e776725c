/**
 * The JSON report's schema (src/emulate/report.schema.json, draft 2020-12): it names its version
 * as the report does, it agrees with REPORT_SCHEMA.md key for key, with report_json.ts's
 * REQUIRED_KEYS and with the counter table's split rows; a real report validates, and the
 * controls (the same report with a wrong type, a wrong unit, a negative count, an unknown enum
 * value, a missing or an extra key) are each rejected. The reproduce table's schema
 * (src/emulate/reproduce.schema.json) on a trimmed real table (fixtures/reproduce-table.json; the
 * --quick test in reproduce.test.ts validates a fresh one) and its controls.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { REPORT_SCHEMA_ID, REQUIRED_KEYS } from '../src/emulate/report_json.js';
import { REPORT_SCHEMA_VERSION } from '../src/emulate/report_model.js';
import { FAULT_INJECTIONS } from '../src/emulate/messages.js';
import { jsonKeyOf, SPLIT_ROWS } from '../src/stats/worker_stats.js';
import { runWithJson } from './_emulate.js';
import type { Json } from './_emulate.js';
import { loadReportSchema, reportSchemaErrors, reproduceTableErrors } from './_report_schema.js';

const schema = loadReportSchema() as Json;
const MD = readFileSync(new URL('../../src/emulate/REPORT_SCHEMA.md', import.meta.url), 'utf8');

/** Every property name the schema defines, anywhere (its `properties` objects, $defs included). */
function schemaKeys(node: Json, out = new Set<string>()): Set<string> {
  if (node === null || typeof node !== 'object') return out;
  if (Array.isArray(node)) {
    for (const x of node) schemaKeys(x, out);
    return out;
  }
  for (const [k, v] of Object.entries(node as Record<string, Json>)) {
    if (k === 'properties') for (const name of Object.keys(v as object)) out.add(name);
    schemaKeys(v, out);
  }
  return out;
}

/** The schema node at a dotted REQUIRED_KEYS path (`*` = array items or additionalProperties), following $refs. */
function requiredAlong(path: string): string[] {
  const missing: string[] = [];
  const deref = (n: Json): Json => {
    let x = n;
    while (typeof x?.$ref === 'string') x = schema.$defs[(x.$ref as string).replace('#/$defs/', '')];
    if (Array.isArray(x?.anyOf)) x = x.anyOf.find((s: Json) => s.type !== 'null') ?? x;
    return typeof x?.$ref === 'string' ? deref(x) : x;
  };
  let node = deref(schema);
  for (const part of path.split('.')) {
    if (part === '*') {
      node = deref(node.items ?? node.additionalProperties);
      continue;
    }
    if (!(node.required ?? []).includes(part)) missing.push(`${path}: ${part} not required`);
    node = deref(node.properties?.[part]);
    if (node === undefined) return [`${path}: ${part} not in the schema`];
  }
  return missing;
}

test('the schema is draft 2020-12 and names the report version; the report names the schema', (t) => {
  t.is(schema.$schema, 'https://json-schema.org/draft/2020-12/schema');
  t.is(schema.$id, REPORT_SCHEMA_ID);
  t.true((schema.$id as string).endsWith(`:${REPORT_SCHEMA_VERSION}`));
  t.is(schema.properties.schemaVersion.const, REPORT_SCHEMA_VERSION);
  t.is(schema.properties.$schema.const, schema.$id);
  t.regex(MD, new RegExp(`schemaVersion ${REPORT_SCHEMA_VERSION}\\b`));
  t.true(MD.includes(`\`${REPORT_SCHEMA_ID}\``), 'REPORT_SCHEMA.md names the $id');
});

test("config.faultInject's enum is the emulator's list of injections, and null", (t) => {
  // Every injection a test drives must validate; a value added to messages.ts without the schema fails here.
  t.deepEqual(schema.properties.config.properties.faultInject.enum, [null, ...FAULT_INJECTIONS]);
});

test("REPORT_SCHEMA.md and the schema list the same keys; REQUIRED_KEYS are required; splitCounters are the table's split rows", (t) => {
  const keys = schemaKeys(schema);
  // Words of every `code` span: `phases[]`, `pagesAfter` and `{ count, p50 }` name keys alike.
  const ticked = new Set([...MD.matchAll(/`([^`]+)`/g)].flatMap((m) => m[1]!.split(/[^A-Za-z0-9$_-]+/)));
  // Schema -> md: every key the schema defines is named in the md.
  t.deepEqual(
    [...keys].filter((k) => !ticked.has(k)),
    [],
    'keys in the schema but not in REPORT_SCHEMA.md',
  );
  // Md -> schema: every key in the first column of the md's tables (dotted paths and [] allowed).
  const tableKeys = MD.split('\n')
    .filter((l) => l.startsWith('| `'))
    .flatMap((l) => [...l.split('|')[1]!.matchAll(/`([^`]+)`/g)].flatMap((m) => m[1]!.split('.').map((p) => p.replace(/\[\]$/, ''))));
  t.true(tableKeys.length > 30);
  t.deepEqual(
    tableKeys.filter((k) => !keys.has(k)),
    [],
    'keys in REPORT_SCHEMA.md tables but not in the schema',
  );
  t.deepEqual(REQUIRED_KEYS.flatMap(requiredAlong), []);
  t.deepEqual(Object.keys(schema.$defs.splitCounters.properties), SPLIT_ROWS.map(jsonKeyOf));
});

test.serial('a real report validates; the controls (wrong type, wrong unit, bad enum, missing or extra key) are rejected', async (t) => {
  const r = await runWithJson(['-v', '1', '-b', '4M'], { timeoutMs: 60_000 });
  t.is(r.code, 0, r.stderr);
  t.deepEqual(reportSchemaErrors(r.report), []);
  const controls: Record<string, (rep: Json) => void> = {
    'seconds as a string': (rep) => {
      rep.phases[0].seconds = '0.5';
    },
    'a fractional ns (a unit slip: ms or s where ns belong)': (rep) => {
      rep.mmuLock.writeHoldNs.p99 = 0.0012;
    },
    'a negative count': (rep) => {
      rep.split.lockDrops = -1;
    },
    'a fractional count': (rep) => {
      rep.iterations[0].dirtyPages = 10.5;
    },
    'an unknown phase kind': (rep) => {
      rep.phases[0].kind = 'populated';
    },
    'an unknown dirty-tracking mode': (rep) => {
      rep.dirtyTracking.mode = 'bitmap';
    },
    'the wrong schemaVersion': (rep) => {
      rep.schemaVersion = REPORT_SCHEMA_VERSION + 1;
    },
    'a missing required key': (rep) => {
      delete rep.invariants.ok;
    },
    'an extra top-level key': (rep) => {
      rep.surprise = 1;
    },
    'an extra key in a latency summary': (rep) => {
      rep.mmuLock.readWaitNs.p95 = 0;
    },
  };
  for (const [what, mutate] of Object.entries(controls)) {
    const bad = structuredClone(r.report);
    mutate(bad);
    t.true(reportSchemaErrors(bad).length > 0, `${what}: accepted`);
  }
});

test('the reproduce table schema: a trimmed real table validates; the controls are rejected', (t) => {
  const doc = JSON.parse(readFileSync(new URL('../../native-free-tests/fixtures/reproduce-table.json', import.meta.url), 'utf8')) as Json;
  t.deepEqual(reproduceTableErrors(doc), []);
  const controls: Record<string, (d: Json) => void> = {
    'an unknown verdict': (d) => {
      d.rows[0].columns.calibrated.status = 'maybe';
    },
    'a median as a string': (d) => {
      d.rows[0].columns.calibrated.medians[d.rows[0].variants[0].id] = '1.5';
    },
    'an unknown judgement kind': (d) => {
      d.rows[0].judgement = { kind: 'vibes' };
    },
    "a run's config that breaks the report schema (vCPUs as a string)": (d) => {
      d.runLog[0].config.vcpus = '2';
    },
    'a negative count': (d) => {
      d.counts.calibrated.missed = -1;
    },
    'an extra key': (d) => {
      d.rows[0].verdict = 'ok';
    },
  };
  for (const [what, mutate] of Object.entries(controls)) {
    const bad = structuredClone(doc);
    mutate(bad);
    t.true(reproduceTableErrors(bad).length > 0, `${what}: accepted`);
  }
});
