/**
 * The JSON report's schema (src/emulate/report.schema.json, draft 2020-12) compiled with Ajv, for
 * every test that writes a `--json` report: runWithJson (_emulate.ts) validates each one, so a
 * report that drifts from its schema fails the test that wrote it.
 */
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv/dist/2020.js';

/** The schema file, read from the source tree (the tests run from dist/native-free-tests/). */
const REPORT_SCHEMA_FILE = new URL('../../src/emulate/report.schema.json', import.meta.url);

export function loadReportSchema(): Record<string, unknown> {
  return JSON.parse(readFileSync(REPORT_SCHEMA_FILE, 'utf8')) as Record<string, unknown>;
}

let validate: ValidateFunction | undefined;

/** The schema's violations of `report`, one line each (empty = valid). */
export function reportSchemaErrors(report: unknown): string[] {
  validate ??= new Ajv2020({ allErrors: true, strict: true }).compile(loadReportSchema());
  if (validate(report)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath === '' ? '(root)' : e.instancePath} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
}

/** Throws, naming every violation, unless `report` validates against the schema. */
export function assertReportValid(report: unknown): void {
  const errors = reportSchemaErrors(report);
  if (errors.length > 0) throw new Error(`the JSON report does not validate against src/emulate/report.schema.json:\n  ${errors.slice(0, 20).join('\n  ')}`);
}
