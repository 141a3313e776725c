/**
 * SPTE encoding: mirrors the load-time checks of src/mmu/spte.ts, and checks the constructors
 * against the bit positions the issue fixes (EPT: R/W/X 0-2, large 7, A 8, D 9, MMU-present 11,
 * PFN 12-51, host-writable 57, MMU-writable 58).
 */
import test from 'ava';
import * as spte from '../src/mmu/spte.js';

const FIELDS: Record<string, bigint> = {
  R: spte.SPTE_R_MASK,
  W: spte.SPTE_W_MASK,
  X: spte.SPTE_X_MASK,
  LARGE: spte.SPTE_LARGE_MASK,
  A: spte.SPTE_A_MASK,
  D: spte.SPTE_D_MASK,
  MMU_PRESENT: spte.SPTE_MMU_PRESENT_MASK,
  PFN: spte.SPTE_PFN_MASK,
  HOST_WRITABLE: spte.SPTE_HOST_WRITABLE_MASK,
  MMU_WRITABLE: spte.SPTE_MMU_WRITABLE_MASK,
};

test('bit positions are the EPT ones', (t) => {
  t.is(spte.SPTE_R_MASK, 1n);
  t.is(spte.SPTE_W_MASK, 2n);
  t.is(spte.SPTE_X_MASK, 4n);
  t.is(spte.SPTE_LARGE_MASK, 1n << 7n);
  t.is(spte.SPTE_A_MASK, 1n << 8n);
  t.is(spte.SPTE_D_MASK, 1n << 9n);
  t.is(spte.SPTE_MMU_PRESENT_MASK, 1n << 11n);
  t.is(spte.SPTE_PFN_MASK, ((1n << 52n) - 1n) & ~((1n << 12n) - 1n), 'PFN is bits 12..51');
  t.is(spte.SPTE_HOST_WRITABLE_MASK, 1n << 57n);
  t.is(spte.SPTE_MMU_WRITABLE_MASK, 1n << 58n);
});

test('no two masks overlap', (t) => {
  const names = Object.keys(FIELDS);
  for (let i = 0; i < names.length; i++) {
    for (let j = i + 1; j < names.length; j++) {
      t.is(FIELDS[names[i]!]! & FIELDS[names[j]!]!, 0n, `${names[i]} vs ${names[j]}`);
    }
  }
});

test('the three non-present values are distinct, non-present, and frozen/poison carry no RWX or A/D', (t) => {
  const { SHADOW_NONPRESENT_VALUE: np, FROZEN_SPTE: fr, POISON_SPTE: po } = spte;
  t.not(np, fr);
  t.not(np, po);
  t.not(fr, po);
  for (const v of [np, fr, po]) t.false(spte.isShadowPresent(v));
  for (const v of [fr, po]) t.is(v & 0x307n, 0n);
  t.true(spte.isFrozen(fr));
  t.true(spte.isPoison(po));
  t.false(spte.isFrozen(po));
  t.false(spte.isPoison(fr));
  // they fit a BigInt64Array slot unchanged
  const a = new BigInt64Array(3);
  a[0] = np;
  a[1] = fr;
  a[2] = po;
  t.deepEqual([a[0], a[1], a[2]], [np, fr, po]);
});

test('leaf and non-leaf constructors', (t) => {
  const l4k = spte.makeLeafSpte(0x12345, 1);
  t.true(spte.isShadowPresent(l4k));
  t.false(spte.isLargeSpte(l4k));
  t.true(spte.isLastSpte(l4k, 1));
  t.false(spte.isWritable(l4k));
  t.true(spte.isMmuWritable(l4k));
  t.true(spte.isFastWriteFixable(l4k));
  t.is(spte.spteToPfn(l4k), 0x12345);

  const w2m = spte.makeLeafSpte(0x400, 2, { writable: true });
  t.true(spte.isLargeSpte(w2m));
  t.true(spte.isLastSpte(w2m, 2));
  t.true(spte.isWritable(w2m));
  t.true(spte.isDirty(w2m));
  t.false(spte.isFastWriteFixable(w2m), 'already writable');

  const nl = spte.makeNonLeafSpte(77);
  t.true(spte.isShadowPresent(nl));
  t.false(spte.isLastSpte(nl, 3));
  t.true(spte.isPresentNonLeaf(nl, 3));
  t.is(spte.spteToChildTable(nl), 77);

  const wp = spte.wrprotSpte(w2m);
  t.false(spte.isWritable(wp));
  t.true(spte.isMmuWritable(wp), 'write protection keeps MMU-writable');
  t.is(spte.makeWritableDirty(spte.clearDirtySpte(wp)), w2m);
});

test('huge-page split children inherit every bit and add their offset', (t) => {
  const g1 = spte.makeLeafSpte(0x40000, 3, { writable: true });
  for (const i of [0, 1, 255, 511]) {
    const c = spte.makeHugePageSplitSpte(g1, 2, i);
    t.true(spte.isLargeSpte(c), '2M children of a 1G page are still large');
    t.is(spte.spteToPfn(c), 0x40000 + i * 512);
    t.is(c & ~spte.SPTE_PFN_MASK, g1 & ~spte.SPTE_PFN_MASK, 'all non-PFN bits inherited');
  }
  const m2 = spte.wrprotSpte(spte.makeLeafSpte(0x200, 2, { writable: true }));
  for (const i of [0, 7, 511]) {
    const c = spte.makeHugePageSplitSpte(m2, 1, i);
    t.false(spte.isLargeSpte(c), '4K children lose the large bit');
    t.is(spte.spteToPfn(c), 0x200 + i);
    t.is(c & ~(spte.SPTE_PFN_MASK | spte.SPTE_LARGE_MASK), m2 & ~(spte.SPTE_PFN_MASK | spte.SPTE_LARGE_MASK));
    t.false(spte.isWritable(c));
    t.true(spte.isDirty(c), 'D inherited');
  }
  t.throws(() => spte.makeHugePageSplitSpte(spte.makeLeafSpte(5, 1), 1, 0), { instanceOf: RangeError });
  t.throws(() => spte.makeHugePageSplitSpte(spte.FROZEN_SPTE, 1, 0), { instanceOf: RangeError });
});

test('geometry helpers', (t) => {
  t.is(spte.PT_ENTRIES, 512);
  t.is(spte.pagesPerHpage(1), 1);
  t.is(spte.pagesPerHpage(2), 512);
  t.is(spte.pagesPerHpage(3), 262144);
  t.is(spte.pagesPerHpage(5), 2 ** 36);
  t.is(spte.spteIndex(0x12345, 1), 0x145);
  t.is(spte.spteIndex(0x12345, 2), 0x91);
  t.is(spte.spteIndex(2 ** 44 + 5 * 2 ** 36, 5), 256 + 5);
  t.is(spte.alignDownGfn(0x12345, 2), 0x12200);
});

test('spteClearLowBits / spteSetLowBits equal the BigInt & ~m and | m they replace, high bits and sign included', (t) => {
  const values = [
    0n,
    spte.makeLeafSpte(0x12345678, 1, { writable: true }),
    spte.makeLeafSpte(0xfffff, 2, { writable: false }) | spte.SPTE_D_MASK,
    spte.makeNonLeafSpte(0xabcde),
    spte.FROZEN_SPTE,
    spte.POISON_SPTE,
    -1n, // every bit set, bit 63 included: the value is negative as a BigInt64
  ];
  const masks = [spte.SPTE_W_MASK, spte.SPTE_D_MASK, spte.SPTE_W_MASK | spte.SPTE_D_MASK, spte.SPTE_MMU_PRESENT_MASK | spte.SPTE_LARGE_MASK];
  for (const v of values) {
    for (const m of masks) {
      const lo = spte.lowFlagBits(m);
      t.is(spte.spteClearLowBits(v, lo), BigInt.asIntN(64, v & ~m), `clear ${spte.spteHex(m)} of ${spte.spteHex(v)}`);
      t.is(spte.spteSetLowBits(v, lo), BigInt.asIntN(64, v | m), `set ${spte.spteHex(m)} on ${spte.spteHex(v)}`);
    }
  }
  t.throws(() => spte.lowFlagBits(spte.SPTE_MMU_WRITABLE_MASK), { instanceOf: RangeError });
  t.throws(() => spte.lowFlagBits(0n), { instanceOf: RangeError });
});
