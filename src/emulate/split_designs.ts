/**
 * The split allocation designs the command line accepts (`--split-alloc`), read from the one
 * registry (src/mmu/split_alloc.ts, filled by each design's file as split_alloc_designs.ts
 * imports it): the accepted names are exactly the implemented ones, and the summaries --help and
 * the report print are the ones each design registered. No second list to keep in step.
 */
import { splitAllocDesignRegistrations } from '../mmu/split_alloc_designs.js';

export interface SplitAllocDesignInfo {
  /** The --split-alloc value. */
  readonly name: string;
  /** One line for --help and the report. */
  readonly summary: string;
  /** The kernel version or proposal it models. */
  readonly origin: string;
}

/** Names --split-alloc accepts: every implemented design, in compare order. */
export function splitAllocDesignNames(): string[] {
  return splitAllocDesignRegistrations().map((r) => r.name);
}

export function splitAllocDesignInfo(name: string): SplitAllocDesignInfo | undefined {
  const r = splitAllocDesignRegistrations().find((x) => x.name === name);
  return r === undefined ? undefined : { name: r.name, summary: r.summary, origin: r.origin };
}
