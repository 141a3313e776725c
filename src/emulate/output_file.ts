/**
 * Output files named on the command line: refused before any run starts when they could not be
 * written, so a long run never ends by losing its results (exit 2, one line naming the option).
 *
 * OUTPUT_FILE_OPTIONS is the one table of options that name a file the run writes; main.ts checks
 * every one of them with checkOutputFiles() right after parsing, for single runs, compares and
 * sweeps alike, and compare_main.ts refuses the one-run files with many runs. A new file option
 * joins with one line there; the test native-free-tests/emulate-e2e-paths.test.ts fails for any
 * `FILE` option left out.
 *
 * The check is a probe, not a permission test: access(2) says yes to root for any path, and
 * /proc or a read-only mount refuse the create only when it is tried. An existing file is opened
 * for writing without truncation; a missing one is created and removed again at once.
 */
import { closeSync, openSync, statSync, unlinkSync } from 'node:fs';
import { invalidOption } from '../errors.js';
import { flagName } from './options.js';
import type { RawValues } from './options.js';

/**
 * Every option whose value is a file the run writes (by long name), and what the file holds: one
 * run's output (a sweep or --compare would overwrite it run after run, so they refuse it) or a
 * row for every run.
 */
export const OUTPUT_FILE_OPTIONS: Readonly<Record<string, 'one run' | 'every run'>> = Object.freeze({
  json: 'one run',
  csv: 'every run',
  'timeline-csv': 'one run',
  trace: 'one run',
  html: 'every run',
});

/** Throws ERR_INVALID_OPTION (exit code 2) naming the first output file option whose file cannot be written. */
export function checkOutputFiles(raw: RawValues): void {
  for (const long of Object.keys(OUTPUT_FILE_OPTIONS)) {
    const file = raw[long];
    if (typeof file === 'string') checkOutputPath(flagName(long), file);
  }
}

/** Throws ERR_INVALID_OPTION (exit code 2) naming `option` if `file` cannot be created or replaced. */
export function checkOutputPath(option: string, file: string): void {
  if (file.trim() === '') throw invalidOption(option, 'expected a file name');
  let exists = false;
  try {
    const st = statSync(file);
    if (st.isDirectory()) throw invalidOption(option, `${file} is a directory`);
    exists = true;
  } catch (err) {
    if (!isErrno(err)) throw err;
    // ENOENT (fine: it will be created) or a path that cannot exist (ENOTDIR): the probe says which.
  }
  try {
    closeSync(openSync(file, exists ? 'r+' : 'wx'));
    if (!exists) unlinkSync(file);
  } catch (err) {
    if (!isErrno(err)) throw err;
    // Node's message is "CODE: description, open 'path'": keep "CODE: description".
    throw invalidOption(option, `cannot write ${file}: ${err.message.split(', ')[0]}`);
  }
}

/** A failed system call (it has `syscall`), as opposed to our own ERR_* errors. */
function isErrno(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}
