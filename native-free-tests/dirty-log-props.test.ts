/**
 * The dirty-log bitmap (src/mmu/slot_flags.ts markPageDirty/isPageDirty, src/mmu/dirty_log.ts
 * enable/GET/CLEAR) against a Set of dirty pages, by model-based testing: fast-check generates
 * random sequences of marks, queries, GET_DIRTY_LOG (manual-protect: copy; without it: copy and
 * clear), CLEAR_DIRTY_LOG of random 64-page-aligned ranges and masks, and enabling with
 * INITIALLY_SET, runs each on a fresh VM and on the Set, and checks after every step that the
 * bitmap says what the Set says (the harvested pages, the counts, every page's bit).
 *
 * Single-threaded (the races are the stress tests' job); no page is mapped, so GET/CLEAR have
 * no SPTE to write-protect and only the bitmap is under test.
 *
 * The control: a GET that drops the bitmap's last word (a `< length - 1` loop bound) must be
 * refuted by the same commands.
 */
import test from 'ava';
import fc from 'fast-check';
import { clearDirtyLog, enableDirtyLogging, getDirtyLog } from '../src/mmu/dirty_log.js';
import { isPageDirty, markPageDirty } from '../src/mmu/slot_flags.js';
import { dropAlways } from '../src/mmu/split_alloc.js';
import type { Vm } from '../src/vm.js';
import { assertProperty, assertRefuted } from './_fc.js';
import { smallVm } from './_small_vm.js';

/** 2 huge pages: 1024 4K pages, 32 bitmap words. */
const HUGE_PAGES = 2;
const NPAGES = HUGE_PAGES * 512;

/** The pages the bitmap holds, and how GET reads it (the real one, or the control's). */
interface Real {
  readonly vm: Vm;
  readonly base: number;
  readonly get: (vm: Vm, out: Int32Array, manualProtect: boolean) => number;
}
type Model = { dirty: Set<number> };

function realGet(vm: Vm, out: Int32Array, manualProtect: boolean): number {
  return getDirtyLog(vm, 0, out, { manualProtect }).dirtyPages;
}

/** The control: the harvest copies every word but the last. */
function getDroppingLastWord(vm: Vm, out: Int32Array, manualProtect: boolean): number {
  getDirtyLog(vm, 0, out, { manualProtect });
  out[out.length - 1] = 0;
  let n = 0;
  for (const w of out) for (let b = 0; b < 32; b++) n += (w >>> b) & 1;
  return n;
}

function pagesOf(words: Int32Array, firstPage = 0): Set<number> {
  const s = new Set<number>();
  for (let w = 0; w < words.length; w++) for (let b = 0; b < 32; b++) if (((words[w]! >>> b) & 1) !== 0) s.add(firstPage + w * 32 + b);
  return s;
}

function sameSet(a: ReadonlySet<number>, b: ReadonlySet<number>, what: string): void {
  const missing = [...a].filter((p) => !b.has(p));
  const extra = [...b].filter((p) => !a.has(p));
  if (missing.length > 0 || extra.length > 0) throw new Error(`${what}: missing pages [${missing.slice(0, 8)}], extra pages [${extra.slice(0, 8)}]`);
}

/** The whole bitmap agrees with the model (after each command). */
function checkEveryPage(m: Model, r: Real): void {
  sameSet(m.dirty, pagesOf(r.vm.dirtyBitmap(0)), 'bitmap');
}

class Mark implements fc.Command<Model, Real> {
  readonly page: number;
  constructor(page: number) {
    this.page = page;
  }
  check(): boolean {
    return true;
  }
  run(m: Model, r: Real): void {
    markPageDirty(r.vm, 0, r.base + this.page);
    m.dirty.add(this.page);
    checkEveryPage(m, r);
  }
  toString(): string {
    return `mark(${this.page})`;
  }
}

/** isPageDirty, the query the fault paths use. */
class Query implements fc.Command<Model, Real> {
  readonly page: number;
  constructor(page: number) {
    this.page = page;
  }
  check(): boolean {
    return true;
  }
  run(m: Model, r: Real): void {
    const got = isPageDirty(r.vm, 0, r.base + this.page);
    if (got !== m.dirty.has(this.page)) throw new Error(`isPageDirty(${this.page}) = ${got}, the model says ${m.dirty.has(this.page)}`);
  }
  toString(): string {
    return `dirty?(${this.page})`;
  }
}

class Get implements fc.Command<Model, Real> {
  readonly manualProtect: boolean;
  constructor(manualProtect: boolean) {
    this.manualProtect = manualProtect;
  }
  check(): boolean {
    return true;
  }
  run(m: Model, r: Real): void {
    const out = new Int32Array(NPAGES / 32).fill(-1);
    const n = r.get(r.vm, out, this.manualProtect);
    sameSet(m.dirty, pagesOf(out), `GET (manual-protect ${this.manualProtect})`);
    if (n !== m.dirty.size) throw new Error(`GET counted ${n} pages, the model has ${m.dirty.size}`);
    // Without manual protect GET_DIRTY_LOG also clears what it returned.
    if (!this.manualProtect) m.dirty.clear();
    checkEveryPage(m, r);
  }
  toString(): string {
    return `get(${this.manualProtect ? 'manual' : 'clearing'})`;
  }
}

class Clear implements fc.Command<Model, Real> {
  readonly firstPage: number;
  readonly mask: readonly number[];
  constructor(firstPage: number, mask: readonly number[]) {
    this.firstPage = firstPage;
    this.mask = mask;
  }
  check(): boolean {
    return true;
  }
  run(m: Model, r: Real): void {
    const res = clearDirtyLog(r.vm, 0, this.firstPage, Int32Array.from(this.mask), { eagerSplit: false, design: dropAlways });
    const masked = pagesOf(Int32Array.from(this.mask), this.firstPage);
    const hit = [...masked].filter((p) => m.dirty.has(p));
    if (res.cleared !== hit.length) throw new Error(`CLEAR cleared ${res.cleared} pages, the model ${hit.length}`);
    for (const p of hit) m.dirty.delete(p);
    checkEveryPage(m, r);
  }
  toString(): string {
    return `clear(${this.firstPage}, [${this.mask.map((w) => (w >>> 0).toString(16)).join(',')}])`;
  }
}

class EnableInitiallySet implements fc.Command<Model, Real> {
  check(): boolean {
    return true;
  }
  run(m: Model, r: Real): void {
    enableDirtyLogging(r.vm, 0, { initiallySet: true, eagerSplit: false, design: dropAlways });
    m.dirty = new Set(Array.from({ length: NPAGES }, (_, p) => p));
    checkEveryPage(m, r);
  }
  toString(): string {
    return 'enable(initially-set)';
  }
}

/** Pages at word edges and the slot's ends, or anywhere. */
const pageArb = fc.oneof(fc.constantFrom(0, 1, 31, 32, 63, 64, NPAGES - 33, NPAGES - 32, NPAGES - 1), fc.integer({ min: 0, max: NPAGES - 1 }));
/** A mask word: all, none, or any bits. */
const wordArb = fc.oneof(fc.constantFrom(0, -1), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }));
/** CLEAR of whole 64-page word pairs inside the slot (the ioctl's alignment). */
const clearArb = fc
  .integer({ min: 0, max: NPAGES / 64 - 1 })
  .chain((k) =>
    fc.tuple(
      fc.constant(k * 64),
      fc.integer({ min: 1, max: NPAGES / 64 - k }).chain((pairs) => fc.array(wordArb, { minLength: pairs * 2, maxLength: pairs * 2 })),
    ),
  )
  .map(([first, mask]) => new Clear(first, mask));

const commandsArb = fc.commands(
  [pageArb.map((p) => new Mark(p)), pageArb.map((p) => new Query(p)), fc.boolean().map((mp) => new Get(mp)), clearArb, fc.constant(new EnableInitiallySet())],
  { maxCommands: 40 },
);

function bitmapMatchesSet(get: Real['get']) {
  return fc.property(commandsArb, (cmds) => {
    const vm = smallVm(HUGE_PAGES);
    const base = vm.config.memslots[0]!.baseGfn;
    fc.modelRun(() => ({ model: { dirty: new Set<number>() }, real: { vm, base, get } }), cmds);
  });
}

const RUNS = 100;

test('the dirty bitmap agrees with a Set through random marks, GETs, CLEARs and enables', async (t) => {
  await assertProperty(t, bitmapMatchesSet(realGet), RUNS);
});

test('control: a GET that drops the last bitmap word is refuted', async (t) => {
  await assertRefuted(t, bitmapMatchesSet(getDroppingLastWord), RUNS);
});
