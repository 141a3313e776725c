/**
 * TdpIter (src/mmu/tdp_iter.ts) against a reference walker, over random trees, ranges and yields.
 *
 * The tree is generated as a model: per table, a few entries at chosen indices, each a huge or 4K
 * leaf, a frozen SPTE or a child table (every other entry non-present), at 4 or 5 levels. It is
 * written into a BigInt64Array pool as the MMU lays tables out. The reference walks the MODEL
 * (recursion over the generated structure, nothing shared with the iterator's index arithmetic)
 * and lists, in pre-order, every entry at or above minLevel whose region intersects [start, end),
 * descending only into child tables (the model says which entries are tables; the iterator reads
 * the SPTE bits).
 *
 * Yields: a walk from `from` that yields after visit k continues as a fresh walk from max(from,
 * gfn of visit k) (KVM's restart at next_last_level_gfn), so the expected visits of a walk with
 * yields are the reference's prefixes joined up; every yield counts one restart and records the
 * restart gfn.
 *
 * The control: a reference off by one at the end of the range (it also visits an entry starting
 * exactly at `end`) must be refuted by the same property.
 */
import test from 'ava';
import fc from 'fast-check';
import { TdpIter } from '../src/mmu/tdp_iter.js';
import { FROZEN_SPTE, makeLeafSpte, makeNonLeafSpte, MAX_HUGE_LEVEL, pagesPerHpage, PT_ENTRIES } from '../src/mmu/spte.js';
import { assertProperty, assertRefuted } from './_fc.js';

/** One generated entry; absent indices are non-present (SHADOW_NONPRESENT_VALUE). */
type EntryModel = { readonly kind: 'leaf'; readonly writable: boolean } | { readonly kind: 'frozen' } | { readonly kind: 'table'; readonly table: TableModel };
type TableModel = readonly (readonly [number, EntryModel])[];

/** Indices near both ends of a table and anywhere between: boundaries are where walkers go wrong. */
const indexArb = fc.oneof(fc.constantFrom(0, 1, 2, 255, 256, 510, 511), fc.integer({ min: 0, max: PT_ENTRIES - 1 }));

/** A table at `level`: at most a few entries per table, so a 5-level tree stays a few dozen tables. */
function tableArb(level: number): fc.Arbitrary<TableModel> {
  const kinds: fc.Arbitrary<EntryModel>[] = [fc.constant({ kind: 'frozen' } as const)];
  if (level <= MAX_HUGE_LEVEL) kinds.push(fc.boolean().map((writable) => ({ kind: 'leaf', writable }) as const));
  if (level > 1) kinds.push(tableArb(level - 1).map((table) => ({ kind: 'table', table }) as const));
  const maxLength = level >= 3 ? 2 : level === 2 ? 4 : 6;
  return fc.uniqueArray(fc.tuple(indexArb, fc.oneof(...kinds)), { maxLength, selector: (e) => e[0] });
}

/** A model table with the SPTE each entry holds and, for a child table, its model. */
interface BuiltTable {
  readonly entries: ReadonlyMap<number, { readonly spte: bigint; readonly child: BuiltTable | null }>;
}

/** Write the model into a pool (table 0 is the root) and return both. */
function build(root: TableModel, rootLevel: number): { spt: BigInt64Array; tree: BuiltTable } {
  const tables: bigint[][] = [];
  const place = (model: TableModel, level: number, baseGfn: number): BuiltTable => {
    const index = tables.length;
    const slots = new Array<bigint>(PT_ENTRIES).fill(0n);
    tables.push(slots);
    const entries = new Map<number, { spte: bigint; child: BuiltTable | null }>();
    for (const [i, e] of model) {
      const gfn = baseGfn + i * pagesPerHpage(level);
      if (e.kind === 'table') {
        const childIndex = tables.length;
        const child = place(e.table, level - 1, gfn);
        entries.set(i, { spte: makeNonLeafSpte(childIndex), child });
      } else {
        entries.set(i, { spte: e.kind === 'frozen' ? FROZEN_SPTE : makeLeafSpte(gfn, level, { writable: e.writable }), child: null });
      }
      slots[i] = entries.get(i)!.spte;
    }
    tables[index] = slots;
    return { entries };
  };
  const tree = place(root, rootLevel, 0);
  const spt = new BigInt64Array(tables.length * PT_ENTRIES);
  for (const [t, slots] of tables.entries()) spt.set(slots, t * PT_ENTRIES);
  return { spt, tree };
}

interface Visit {
  readonly gfn: number;
  readonly level: number;
  readonly spte: bigint;
}

/** The reference: pre-order over the model. `endSlack` 1 is the control's off-by-one (it visits gfn === end). */
function refWalk(tree: BuiltTable, rootLevel: number, minLevel: number, start: number, end: number, endSlack = 0): Visit[] {
  const out: Visit[] = [];
  const walk = (table: BuiltTable, level: number, base: number): boolean => {
    const span = pagesPerHpage(level);
    for (let i = Math.max(0, Math.floor((start - base) / span)); i < PT_ENTRIES; i++) {
      const gfn = base + i * span;
      if (gfn >= end + endSlack) return true;
      const e = table.entries.get(i);
      out.push({ gfn, level, spte: e?.spte ?? 0n });
      if (level > minLevel && e?.child != null && walk(e.child, level - 1, gfn)) return true;
    }
    return false;
  };
  walk(tree, rootLevel, 0);
  return out;
}

/** Reference with yields: after visit k (of the walk in progress from `from`), continue from max(from, its gfn). */
function refWalkYielding(tree: BuiltTable, rootLevel: number, minLevel: number, start: number, end: number, yields: readonly number[], endSlack = 0) {
  const visits: Visit[] = [];
  const restartGfns: number[] = [];
  let from = start;
  let done = 0;
  for (const k of yields) {
    const part = refWalk(tree, rootLevel, minLevel, from, end, endSlack);
    const local = k - done;
    if (local >= part.length) break; // the walk ended before this yield
    visits.push(...part.slice(0, local + 1));
    done += local + 1;
    // next_last_level_gfn: the visit's gfn, or the walk's own target when the visit is an
    // ancestor entry that starts below it (right after a start or a restart).
    from = Math.max(from, part[local]!.gfn);
    restartGfns.push(from);
  }
  visits.push(...refWalk(tree, rootLevel, minLevel, from, end, endSlack));
  return { visits, restartGfns };
}

/** The iterator, yielding (as cond_resched does after dropping the locks) after the listed visits. */
function iterWalk(spt: BigInt64Array, rootLevel: number, minLevel: number, start: number, end: number, yields: readonly number[]) {
  const it = new TdpIter(spt);
  const visits: Visit[] = [];
  const restartGfns: number[] = [];
  const pending = new Set(yields);
  // A bound far above any walk of these trees: a walk that never ends is a failure, not a hang.
  const limit = 200_000;
  for (it.start(0, rootLevel, minLevel, start); it.valid && it.gfn < end; it.next()) {
    if (visits.length > limit) throw new Error(`walk did not end after ${limit} visits`);
    visits.push({ gfn: it.gfn, level: it.level, spte: it.oldSpte });
    if (pending.has(visits.length - 1)) {
      it.yielded = true;
      restartGfns.push(it.nextLastLevelGfn);
    }
  }
  return { visits, restartGfns, restarts: it.restarts };
}

/** gfns near interesting places: aligned to some level, one below or above, or anywhere. */
function gfnArb(top: number, rootLevel: number): fc.Arbitrary<number> {
  return fc.oneof(
    fc.integer({ min: 0, max: top - 1 }),
    fc
      .tuple(fc.integer({ min: 1, max: rootLevel }), fc.integer({ min: 0, max: 1024 }), fc.integer({ min: -1, max: 1 }))
      .map(([level, k, d]) => Math.min(top - 1, Math.max(0, k * pagesPerHpage(level) + d))),
  );
}

function caseArb(rootLevel: 4 | 5) {
  const top = pagesPerHpage(rootLevel + 1);
  return fc.record({
    root: tableArb(rootLevel),
    minLevel: fc.integer({ min: 1, max: 3 }),
    a: gfnArb(top, rootLevel),
    b: fc.oneof(gfnArb(top, rootLevel), fc.constant(top)),
    yields: fc.uniqueArray(fc.integer({ min: 0, max: 600 }), { maxLength: 4 }).map((ys) => [...ys].sort((x, y) => x - y)),
  });
}

const fmt = (v: Visit | undefined): string => (v === undefined ? 'none' : `${v.gfn}@${v.level}=0x${BigInt.asUintN(64, v.spte).toString(16)}`);

/** The property: the iterator's visits, restarts and restart gfns equal the reference's. */
function iterMatchesReference(rootLevel: 4 | 5, endSlack: number) {
  return fc.property(caseArb(rootLevel), ({ root, minLevel, a, b, yields }) => {
    // [start, end) from two gfns: an aligned gfn is as likely to be the end as the start.
    const start = Math.min(a, b);
    const end = Math.max(a, b) > start ? Math.max(a, b) : start + 1;
    const { spt, tree } = build(root, rootLevel);
    const want = refWalkYielding(tree, rootLevel, minLevel, start, end, yields, endSlack);
    const got = iterWalk(spt, rootLevel, minLevel, start, end, yields);
    if (got.visits.length !== want.visits.length) throw new Error(`visits: iterator ${got.visits.length}, reference ${want.visits.length}`);
    for (let i = 0; i < got.visits.length; i++) {
      const g = got.visits[i]!;
      const w = want.visits[i]!;
      if (g.gfn !== w.gfn || g.level !== w.level || g.spte !== w.spte) throw new Error(`visit ${i}: iterator ${fmt(g)}, reference ${fmt(w)}`);
    }
    if (got.restarts !== want.restartGfns.length) throw new Error(`restarts: iterator ${got.restarts}, reference ${want.restartGfns.length}`);
    if (got.restartGfns.join() !== want.restartGfns.join()) throw new Error(`restart gfns: ${got.restartGfns.join()} vs ${want.restartGfns.join()}`);
    return true;
  });
}

const RUNS = 150;

for (const rootLevel of [4, 5] as const) {
  test(`TdpIter visits what the reference walker visits: random ${rootLevel}-level trees, ranges, minLevel and yields`, async (t) => {
    await assertProperty(t, iterMatchesReference(rootLevel, 0), RUNS);
  });

  test(`control: a reference off by one at the end of the range is refuted (${rootLevel} levels)`, async (t) => {
    await assertRefuted(t, iterMatchesReference(rootLevel, 1), RUNS);
  });
}
