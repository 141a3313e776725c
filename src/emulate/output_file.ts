/**
 * Output files named on the command line (--json, --csv): refused before any run starts when they
 * could not be written, so a long run never ends by losing its results. Touches nothing.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { invalidOption } from '../errors.js';

/** Throws ERR_INVALID_OPTION (exit code 2) naming `option` if `file` cannot be created or replaced. */
export function checkOutputPath(option: string, file: string): void {
  if (file.trim() === '') throw invalidOption(option, 'expected a file name');
  const path = resolve(file);
  const dir = dirname(path);
  try {
    if (!statSync(dir).isDirectory()) throw new Error('not a directory');
    accessSync(dir, constants.W_OK);
  } catch {
    throw invalidOption(option, `cannot write ${file}: directory ${dir} does not exist or is not writable`);
  }
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    // ENOENT: fine, it will be created.
  }
  if (isDir) throw invalidOption(option, `${file} is a directory`);
}
