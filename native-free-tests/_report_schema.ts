/**
 * The JSON schemas (draft 2020-12) of what the tools write, compiled with Ajv, for every test that
 * writes one: src/emulate/report.schema.json (`npm run emulate -- --json`; runWithJson in
 * _emulate.ts validates each report it reads, so a report that drifts from its schema fails the
 * test that wrote it) and src/emulate/reproduce.schema.json (`npm run reproduce -- --json`, whose
 * runs' `config` refers to the report's).
 */
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv/dist/2020.js';

/** A schema file, read from the source tree (the tests run from dist/native-free-tests/). */
function loadSchema(name: 'report' | 'reproduce'): Record<string, unknown> {
  return JSON.parse(readFileSync(new URL(`../../src/emulate/${name}.schema.json`, import.meta.url), 'utf8')) as Record<string, unknown>;
}

export function loadReportSchema(): Record<string, unknown> {
  return loadSchema('report');
}

let validators: { readonly report: ValidateFunction; readonly reproduce: ValidateFunction } | undefined;

function errorsOf(validate: ValidateFunction, doc: unknown): string[] {
  if (validate(doc)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath === '' ? '(root)' : e.instancePath} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
}

function compiled(): { readonly report: ValidateFunction; readonly reproduce: ValidateFunction } {
  if (validators === undefined) {
    // One Ajv: the reproduce schema refers to the report schema by its $id.
    const ajv = new Ajv2020({ allErrors: true, strict: true });
    const report = ajv.compile(loadSchema('report'));
    validators = { report, reproduce: ajv.compile(loadSchema('reproduce')) };
  }
  return validators;
}

/** The schema's violations of `report`, one line each (empty = valid). */
export function reportSchemaErrors(report: unknown): string[] {
  return errorsOf(compiled().report, report);
}

/** The violations of a `npm run reproduce -- --json` table (empty = valid). */
export function reproduceTableErrors(doc: unknown): string[] {
  return errorsOf(compiled().reproduce, doc);
}

/** Throws, naming every violation, unless `report` validates against the schema. */
export function assertReportValid(report: unknown): void {
  const errors = reportSchemaErrors(report);
  if (errors.length > 0) throw new Error(`the JSON report does not validate against src/emulate/report.schema.json:\n  ${errors.slice(0, 20).join('\n  ')}`);
}
