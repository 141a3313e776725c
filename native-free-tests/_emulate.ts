// Helpers for the end-to-end emulate tests: run `node dist/src/emulate/main.js ...` as a child
// process (bounded by a timeout), optionally with --json into a temp file, and read the result.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assertReportValid } from './_report_schema.js';

const MAIN = fileURLToPath(new URL('../src/emulate/main.js', import.meta.url));

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

export interface CliOptions {
  readonly env?: Record<string, string>;
  /** Kill the child (SIGKILL) after this long; the result then has signal SIGKILL. */
  readonly timeoutMs?: number;
  /** Called with the child once its stdout has printed `waitFor` (e.g. to send SIGINT). */
  readonly onOutput?: { readonly waitFor: RegExp; readonly onMatch: (child: ReturnType<typeof spawn>) => void };
}

export function runCli(args: readonly string[], opts: CliOptions = {}): Promise<CliResult> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let triggered = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (!triggered && opts.onOutput !== undefined && opts.onOutput.waitFor.test(stdout)) {
        triggered = true;
        opts.onOutput.onMatch(child);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

/** Any JSON value, for reading reports in tests. */
// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary report JSON by key, checked by their assertions
export type Json = any;

/**
 * Run with `--json <tmp>` and return the parsed report too (null if the file was not written).
 * Every report written is validated against src/emulate/report.schema.json (_report_schema.ts):
 * a report that drifts from its schema fails the test that wrote it.
 */
export async function runWithJson(args: readonly string[], opts: CliOptions = {}): Promise<CliResult & { readonly report: Json }> {
  const dir = mkdtempSync(join(tmpdir(), 'emulate-test-'));
  const file = join(dir, 'report.json');
  try {
    const r = await runCli([...args, '--json', file, '--quiet'], opts);
    let report: Json = null;
    try {
      report = JSON.parse(readFileSync(file, 'utf8')) as Json;
    } catch {
      report = null;
    }
    if (report !== null) assertReportValid(report);
    return { ...r, report };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** 4K pages mapped by one SPTE at `level` (1 = 4K, 2 = 2M, 3 = 1G). */
export function pagesPer(level: number): number {
  return 512 ** (level - 1);
}

/**
 * Tables a fault-in of `pages` 4K pages (from a 1G-aligned gfn) allocates when it maps them at
 * `level` under a `levels`-deep root (the root itself exists already): one table per 512 entries
 * at every level from `level` up to just below the root.
 */
export function tablesToMap(pages: number, level: number, levels: number): number {
  let n = 0;
  for (let l = level; l < levels; l++) n += Math.ceil(pages / pagesPer(l + 1));
  return n;
}
