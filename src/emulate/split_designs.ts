/**
 * The split allocation designs the command line accepts (`--split-alloc`).
 *
 * The implementations live with the MMU (src/mmu/split_alloc.ts: `registerSplitAllocDesignImpl`,
 * `createSplitAllocDesign`); the accepted names are exactly the implemented ones, so a design
 * registered there (issue 5) is accepted here with no second list to keep in step. This file
 * only adds the one-line summaries --help and the report print.
 */
import { splitAllocDesignImplNames } from '../mmu/split_alloc.js';
// Registers issue 5's designs (cache, nowait-retry, chunked-cache, blocking-under-lock, lazy).
import { SPLIT_ALLOC_DESIGN_SUMMARIES } from '../mmu/split_alloc_designs.js';

export interface SplitAllocDesignInfo {
  /** The --split-alloc value. */
  readonly name: string;
  /** One line for --help and the report. */
  readonly summary: string;
  /** The kernel version or proposal it models. */
  readonly origin: string;
}

const infos = new Map<string, SplitAllocDesignInfo>();

/** Add (or replace) a design's summary for --help. */
export function describeSplitAllocDesign(info: SplitAllocDesignInfo): void {
  infos.set(info.name, Object.freeze({ ...info }));
}

/** Names --split-alloc accepts: every implemented design. */
export function splitAllocDesignNames(): string[] {
  return splitAllocDesignImplNames();
}

export function splitAllocDesignInfo(name: string): SplitAllocDesignInfo | undefined {
  return infos.get(name);
}

for (const info of SPLIT_ALLOC_DESIGN_SUMMARIES) describeSplitAllocDesign(info);
