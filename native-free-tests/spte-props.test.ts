/**
 * SPTE encoding (src/mmu/spte.ts) over random values: constructors and converters round-trip
 * (pfn and child table in, the same out), every predicate agrees with its definition in terms of
 * the bit masks (computed here with BigInt arithmetic, not through the module's Int32 fast paths),
 * and the SPTE transformers change only their own bits.
 *
 * The control: the property that spteToPfn agrees with BigInt arithmetic, over a converter that
 * reads only the SPTE's low 32-bit half (the Int32-halves trick done wrong), must be refuted.
 */
import test from 'ava';
import fc from 'fast-check';
import {
  FROZEN_SPTE,
  isDirty,
  isExecutable,
  isFastWriteFixable,
  isFrozen,
  isLargeSpte,
  isLastSpte,
  isMmuWritable,
  isPoison,
  isPresentLarge,
  isPresentNonLeaf,
  isShadowPresent,
  isWritable,
  makeHugePageSplitSpte,
  makeLeafSpte,
  makeNonLeafSpte,
  makeWritableDirty,
  pagesPerHpage,
  POISON_SPTE,
  clearDirtySpte,
  SHADOW_NONPRESENT_VALUE,
  SPTE_D_MASK,
  SPTE_LARGE_MASK,
  SPTE_MMU_PRESENT_MASK,
  SPTE_MMU_WRITABLE_MASK,
  SPTE_PFN_MASK,
  SPTE_W_MASK,
  SPTE_X_MASK,
  spteIndex,
  spteToChildTable,
  spteToPfn,
  wrprotSpte,
} from '../src/mmu/spte.js';
import { assertProperty, assertRefuted } from './_fc.js';

const RUNS = 500;

/** PFNs fill 40 bits; both halves of the field matter (bits 12..31 and 32..51 of the SPTE). */
const pfnArb = fc.oneof(fc.constantFrom(0, 1, 2 ** 20 - 1, 2 ** 20, 2 ** 32, 2 ** 40 - 1), fc.integer({ min: 0, max: 2 ** 40 - 1 }));
/** Any 64-bit slot value, as a BigInt64Array holds it. */
const spteArb = fc.oneof(fc.constantFrom(SHADOW_NONPRESENT_VALUE, FROZEN_SPTE, POISON_SPTE, -1n), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }));
const has = (s: bigint, m: bigint): boolean => (s & m) !== 0n;
/** The PFN field by BigInt arithmetic: the definition the fast converters must match. */
const pfnByBigInt = (s: bigint): number => Number((BigInt.asUintN(64, s) & SPTE_PFN_MASK) >> 12n);

test('a leaf built from (pfn, level, writable, nxHuge) reads back the same through every predicate', async (t) => {
  const prop = fc.property(pfnArb, fc.integer({ min: 1, max: 3 }), fc.boolean(), fc.boolean(), (pfn, level, writable, nxHuge) => {
    const s = makeLeafSpte(pfn, level, { writable, nxHuge });
    return (
      spteToPfn(s) === pfn &&
      isShadowPresent(s) &&
      isLastSpte(s, level) &&
      !isPresentNonLeaf(s, level) &&
      isLargeSpte(s) === level > 1 &&
      isPresentLarge(s) === level > 1 &&
      isWritable(s) === writable &&
      isDirty(s) === writable &&
      isMmuWritable(s) &&
      isExecutable(s) === !(nxHuge && level > 1) &&
      isFastWriteFixable(s) === !writable &&
      !isFrozen(s) &&
      !isPoison(s)
    );
  });
  await assertProperty(t, prop, RUNS);
});

test('a non-leaf built from a child table reads back the same table and is a present non-leaf at every level above 4K', async (t) => {
  const prop = fc.property(pfnArb, fc.integer({ min: 2, max: 5 }), (child, level) => {
    const s = makeNonLeafSpte(child);
    return spteToChildTable(s) === child && isShadowPresent(s) && isPresentNonLeaf(s, level) && !isLastSpte(s, level) && !isPresentLarge(s);
  });
  await assertProperty(t, prop, RUNS);
});

test('every predicate and converter agrees with its mask definition on any 64-bit value', async (t) => {
  const prop = fc.property(spteArb, fc.integer({ min: 1, max: 5 }), (s, level) => {
    const present = has(s, SPTE_MMU_PRESENT_MASK);
    const large = has(s, SPTE_LARGE_MASK);
    return (
      isShadowPresent(s) === present &&
      isLargeSpte(s) === large &&
      isLastSpte(s, level) === (level === 1 || large) &&
      isPresentNonLeaf(s, level) === (level > 1 && present && !large) &&
      isPresentLarge(s) === (present && large) &&
      isWritable(s) === has(s, SPTE_W_MASK) &&
      isMmuWritable(s) === has(s, SPTE_MMU_WRITABLE_MASK) &&
      isDirty(s) === has(s, SPTE_D_MASK) &&
      isExecutable(s) === has(s, SPTE_X_MASK) &&
      isFastWriteFixable(s) === (present && !has(s, SPTE_W_MASK) && has(s, SPTE_MMU_WRITABLE_MASK)) &&
      spteToPfn(s) === pfnByBigInt(s) &&
      spteToChildTable(s) === pfnByBigInt(s) &&
      isFrozen(s) === (s === FROZEN_SPTE) &&
      isPoison(s) === (s === POISON_SPTE)
    );
  });
  await assertProperty(t, prop, RUNS);
});

test('control: a PFN converter that reads only the low 32-bit half is refuted by the same definition', async (t) => {
  const truncated = (s: bigint): number => Number(BigInt.asUintN(32, s)) >>> 12;
  const prop = fc.property(spteArb, (s) => truncated(s) === pfnByBigInt(s));
  await assertRefuted(t, prop, RUNS);
});

test('wrprot, make-writable-dirty and clear-dirty change only their own bits, and compose as dirty logging needs', async (t) => {
  const prop = fc.property(pfnArb, fc.integer({ min: 1, max: 3 }), fc.boolean(), (pfn, level, writable) => {
    const s = makeLeafSpte(pfn, level, { writable });
    const wp = wrprotSpte(s);
    const wd = makeWritableDirty(wp);
    const cd = clearDirtySpte(s);
    return (
      (wp ^ s) === (s & SPTE_W_MASK) &&
      !isWritable(wp) &&
      isFastWriteFixable(wp) &&
      isMmuWritable(wp) &&
      spteToPfn(wp) === pfn &&
      isWritable(wd) &&
      isDirty(wd) &&
      (wd & ~(SPTE_W_MASK | SPTE_D_MASK)) === (s & ~(SPTE_W_MASK | SPTE_D_MASK)) &&
      wrprotSpte(wp) === wp &&
      makeWritableDirty(wd) === wd &&
      !isDirty(cd) &&
      (cd ^ s) === (s & SPTE_D_MASK) &&
      clearDirtySpte(cd) === cd
    );
  });
  await assertProperty(t, prop, RUNS);
});

test('a huge page split child inherits every bit and maps its share of the frame', async (t) => {
  const prop = fc.property(
    fc.integer({ min: 2, max: 3 }),
    fc.integer({ min: 0, max: 2 ** 20 }),
    fc.integer({ min: 0, max: 511 }),
    fc.boolean(),
    fc.boolean(),
    (level, frame, index, writable, nxHuge) => {
      // A huge leaf's pfn is aligned to its size.
      const pfn = frame * pagesPerHpage(level);
      const huge = makeLeafSpte(pfn, level, { writable, nxHuge });
      const childLevel = level - 1;
      const c = makeHugePageSplitSpte(huge, childLevel, index);
      const kept = ~(SPTE_PFN_MASK | SPTE_LARGE_MASK | SPTE_X_MASK);
      return (
        spteToPfn(c) === pfn + index * pagesPerHpage(childLevel) &&
        (c & kept) === (huge & kept) &&
        isLargeSpte(c) === childLevel > 1 &&
        isLastSpte(c, childLevel) &&
        // 4K children are executable (no NX huge page left to protect); 2M children keep the 1G page's X.
        isExecutable(c) === (childLevel === 1 || isExecutable(huge))
      );
    },
  );
  await assertProperty(t, prop, RUNS);
});

test('spteIndex is the 9-bit field of the gfn at each level (BigInt shifts as the definition)', async (t) => {
  const prop = fc.property(fc.integer({ min: 0, max: 2 ** 45 - 1 }), fc.integer({ min: 1, max: 5 }), (gfn, level) => {
    return spteIndex(gfn, level) === Number((BigInt(gfn) >> BigInt(9 * (level - 1))) & 511n);
  });
  await assertProperty(t, prop, RUNS);
});
