/**
 * TdpIter against an independent brute-force reference: a plain recursive walker over the same
 * tables, which derives both the visit order and the SPTE-read count from the tree's shape (one
 * read per visited entry, one re-read before each step down above minLevel, one re-read of the
 * parent after a child table is exhausted, one read of the first entry past `end`).
 *
 * Restarts: a walk that yields after visit k continues exactly like a fresh walk started at
 * max(start, gfn of visit k) (KVM restarts at next_last_level_gfn), so the reference for a yielded
 * walk is "prefix of walk(start) + walk(max(start, g_k))", with reads added the same way.
 */
import test from 'ava';
import { TdpIter, TdpIterSlot } from '../src/mmu/tdp_iter.js';
import {
  PT_ENTRIES,
  SHADOW_NONPRESENT_VALUE,
  isPresentNonLeaf,
  makeLeafSpte,
  makeNonLeafSpte,
  pagesPerHpage,
  spteToChildTable,
  FROZEN_SPTE,
} from '../src/mmu/spte.js';

interface Visit {
  readonly gfn: number;
  readonly level: number;
  readonly spte: bigint;
}
interface RefResult {
  readonly visits: Visit[];
  /** readsAt[k] = SPTE reads done when visit k is reached (including its own read). */
  readonly readsAt: number[];
  readonly reads: number;
}

/** Seeded xorshift32, so every failure is reproducible from the printed seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

/** Builds a random tree: returns the spt and the root table (0). */
function buildTree(rootLevel: number, seed: number, maxTables: number): { spt: BigInt64Array; root: number } {
  const spt = new BigInt64Array(maxTables * PT_ENTRIES);
  const rand = rng(seed);
  let nextTable = 1;
  const fill = (table: number, level: number, base: number): void => {
    for (let i = 0; i < PT_ENTRIES; i++) {
      const gfn = base + i * pagesPerHpage(level);
      const r = rand();
      let spte = SHADOW_NONPRESENT_VALUE;
      // Upper levels: sparse, so the whole tree stays small; a few children get tables.
      const childChance = level >= 4 ? 0.012 : level === 3 ? 0.02 : 0.02;
      if (level > 1 && r < childChance && nextTable < maxTables) {
        const child = nextTable++;
        spte = makeNonLeafSpte(child);
        spt[table * PT_ENTRIES + i] = spte;
        fill(child, level - 1, gfn);
        continue;
      }
      if (level <= 3 && r < 0.2) spte = makeLeafSpte(gfn, level, { writable: rand() < 0.5 });
      else if (r > 0.995) spte = FROZEN_SPTE;
      spt[table * PT_ENTRIES + i] = spte;
    }
  };
  fill(0, rootLevel, 0);
  return { spt, root: 0 };
}

/** The reference: a recursive walk, sharing nothing with TdpIter. */
function refWalk(spt: BigInt64Array, root: number, rootLevel: number, minLevel: number, start: number, end: number): RefResult {
  const visits: Visit[] = [];
  const readsAt: number[] = [];
  let reads = 0;
  // Returns true when the walk stopped at `end`.
  const walkTable = (table: number, level: number, base: number): boolean => {
    const span = pagesPerHpage(level);
    const first = start > base ? Math.floor((start - base) / span) : 0;
    for (let i = first; i < PT_ENTRIES; i++) {
      const gfn = base + i * span;
      const spte = spt[table * PT_ENTRIES + i]!;
      reads++;
      if (gfn >= end) return true;
      visits.push({ gfn, level, spte });
      readsAt.push(reads);
      if (level > minLevel) {
        reads++; // the re-read before stepping down
        if (isPresentNonLeaf(spte, level)) {
          if (walkTable(spteToChildTable(spte), level - 1, gfn)) return true;
          reads++; // the re-read of this entry when stepping back up
        }
      }
    }
    return false;
  };
  walkTable(root, rootLevel, 0);
  return { visits, readsAt, reads };
}

function iterWalk(
  it: TdpIter,
  root: number,
  rootLevel: number,
  minLevel: number,
  start: number,
  end: number,
  yieldAfter: readonly number[] = [],
): { visits: Visit[]; reads: number; yieldedGfns: number[] } {
  const visits: Visit[] = [];
  const yieldedGfns: number[] = [];
  const r0 = it.spteReads;
  let k = 0;
  let y = 0;
  for (it.start(root, rootLevel, minLevel, start); it.valid && it.gfn < end; it.next()) {
    visits.push({ gfn: it.gfn, level: it.level, spte: it.oldSpte });
    if (y < yieldAfter.length && yieldAfter[y] === k) {
      it.yielded = true; // as cond_resched does after dropping and retaking the locks
      y++;
      yieldedGfns.push(it.nextLastLevelGfn);
    }
    k++;
  }
  return { visits, reads: it.spteReads - r0, yieldedGfns };
}

function fmt(v: Visit | undefined): string {
  return v === undefined ? 'none' : `gfn=0x${v.gfn.toString(16)} level=${v.level} spte=0x${BigInt.asUintN(64, v.spte).toString(16)}`;
}

for (const rootLevel of [4, 5] as const) {
  for (const minLevel of [1, 2, 3]) {
    test(`walk order and SPTE reads match the reference: ${rootLevel} levels, minLevel ${minLevel}`, (t) => {
      for (let seed = 1; seed <= 12; seed++) {
        const { spt, root } = buildTree(rootLevel, seed * 7919 + rootLevel, 40);
        const it = new TdpIter(spt);
        const top = pagesPerHpage(rootLevel + 1);
        const rand = rng(seed);
        const ranges: [number, number][] = [
          [0, top],
          [0, pagesPerHpage(rootLevel)],
        ];
        for (let r = 0; r < 6; r++) {
          // random sub-ranges, biased toward populated low addresses
          const a = Math.floor(rand() * pagesPerHpage(rootLevel) * 2);
          const b = a + 1 + Math.floor(rand() * pagesPerHpage(rootLevel - 1) * 3);
          ranges.push([a, Math.min(b, top)]);
        }
        for (const [start, end] of ranges) {
          const ref = refWalk(spt, root, rootLevel, minLevel, start, end);
          const got = iterWalk(it, root, rootLevel, minLevel, start, end);
          t.is(got.visits.length, ref.visits.length, `seed ${seed} [${start},${end}) visit count`);
          for (let i = 0; i < ref.visits.length; i++) {
            const a = got.visits[i];
            const b = ref.visits[i]!;
            if (a === undefined || a.gfn !== b.gfn || a.level !== b.level || a.spte !== b.spte) {
              t.fail(`seed ${seed} [${start},${end}) visit ${i}: iter ${fmt(a)} ref ${fmt(b)}`);
              return;
            }
          }
          t.is(got.reads, ref.reads, `seed ${seed} [${start},${end}) SPTE reads`);
        }
      }
    });

    test(`restarts (yielded mid-walk) match prefix + fresh walk: ${rootLevel} levels, minLevel ${minLevel}`, (t) => {
      for (let seed = 1; seed <= 8; seed++) {
        const { spt, root } = buildTree(rootLevel, seed * 104729 + minLevel, 40);
        const it = new TdpIter(spt);
        const start = 3 + seed;
        const end = pagesPerHpage(rootLevel + 1);
        const full = refWalk(spt, root, rootLevel, minLevel, start, end);
        if (full.visits.length < 4) continue;
        const rand = rng(seed + 99);
        for (let trial = 0; trial < 5; trial++) {
          const k = Math.floor(rand() * (full.visits.length - 1));
          const vk = full.visits[k]!;
          const resumeAt = Math.max(start, vk.gfn);
          const rest = refWalk(spt, root, rootLevel, minLevel, resumeAt, end);
          const expectVisits = [...full.visits.slice(0, k + 1), ...rest.visits];
          const expectReads = full.readsAt[k]! + rest.reads;
          const restarts0 = it.restarts;
          const got = iterWalk(it, root, rootLevel, minLevel, start, end, [k]);
          t.is(it.restarts - restarts0, 1, 'one restart');
          t.deepEqual(got.yieldedGfns, [resumeAt], 'nextLastLevelGfn at the yield');
          t.is(it.yieldedGfn, resumeAt, 'yieldedGfn records the restart gfn');
          t.is(got.visits.length, expectVisits.length, `seed ${seed} yield after ${k}: visit count`);
          t.deepEqual(got.visits.map(fmt), expectVisits.map(fmt), `seed ${seed} yield after ${k}`);
          t.is(got.reads, expectReads, `seed ${seed} yield after ${k}: SPTE reads`);
        }
        // Two yields in one walk.
        const k1 = Math.floor(full.visits.length / 3);
        const v1 = full.visits[k1]!;
        const mid = refWalk(spt, root, rootLevel, minLevel, Math.max(start, v1.gfn), end);
        if (mid.visits.length > 3) {
          const k2local = Math.floor(mid.visits.length / 2);
          const v2 = mid.visits[k2local]!;
          const tail = refWalk(spt, root, rootLevel, minLevel, Math.max(start, v2.gfn), end);
          const expect = [...full.visits.slice(0, k1 + 1), ...mid.visits.slice(0, k2local + 1), ...tail.visits];
          const got = iterWalk(it, root, rootLevel, minLevel, start, end, [k1, k1 + 1 + k2local]);
          t.deepEqual(got.visits.map(fmt), expect.map(fmt), `seed ${seed} two yields`);
          t.is(got.reads, full.readsAt[k1]! + mid.readsAt[k2local]! + tail.reads, `seed ${seed} two yields: reads`);
        }
      }
    });
  }
}

test('an empty root: one read per root entry visited, then invalid', (t) => {
  const spt = new BigInt64Array(PT_ENTRIES);
  const it = new TdpIter(spt);
  const got = iterWalk(it, 0, 4, 1, 0, pagesPerHpage(5));
  t.is(got.visits.length, 512);
  t.is(got.reads, 512 * 2, 'each root entry: its read plus the re-read before a (failed) step down');
  t.false(it.valid);
});

test('a walk restricted to one 4K gfn reads root-to-leaf plus one', (t) => {
  // A full 4-level path to gfn 0x12345: the walk touches each level's entry, re-reads before each
  // step down, and then reads the neighbouring 4K entry, whose gfn is already past `end`.
  const spt = new BigInt64Array(4 * PT_ENTRIES);
  const gfn = 0x12345;
  spt[0 * PT_ENTRIES + 0] = makeNonLeafSpte(1);
  spt[1 * PT_ENTRIES + 0] = makeNonLeafSpte(2);
  spt[2 * PT_ENTRIES + ((gfn >> 9) & 511)] = makeNonLeafSpte(3);
  spt[3 * PT_ENTRIES + (gfn & 511)] = makeLeafSpte(777, 1);
  const it = new TdpIter(spt);
  const got = iterWalk(it, 0, 4, 1, gfn, gfn + 1);
  t.deepEqual(
    got.visits.map((v) => v.level),
    [4, 3, 2, 1],
  );
  t.is(got.visits[3]!.gfn, gfn);
  t.is(got.reads, 4 + 3 + 1, '4 entries + 3 re-reads + the neighbour past end');
});

test('TdpIterSlot hands back one iterator per pool, its counters zeroed as a fresh one, after a walk that restarted', (t) => {
  const spt = new BigInt64Array(PT_ENTRIES);
  const slot = new TdpIterSlot();
  const first = slot.take(spt);
  const fresh = iterWalk(new TdpIter(spt), 0, 4, 1, 0, pagesPerHpage(5));
  first.start(0, 4, 1, 0);
  first.yielded = true;
  first.next(); // a restart from the root
  t.true(first.spteReads > 0 && first.restarts === 1);
  const again = slot.take(spt);
  t.is(again, first, 'the same iterator for the same pool');
  t.is(again.spteReads, 0);
  t.is(again.restarts, 0);
  t.false(again.yielded);
  t.deepEqual(iterWalk(again, 0, 4, 1, 0, pagesPerHpage(5)), fresh, 'a reused iterator walks and counts exactly as a new one');
  t.not(slot.take(new BigInt64Array(PT_ENTRIES)), first, 'another pool gets its own iterator');
});
