// End to end: `node dist/src/emulate/main.js` on small guests for every backing, 4- and 5-level
// roots, eager splitting on and off, manual-protect on and off. The report's counts must follow
// from the geometry alone: tables installed by populate, huge pages split (by the splitter or on
// vCPU faults), one table per split, dirty pages equal to the pages written, page statistics,
// the invariant checker's verdict, and the JSON schema.
import test from 'ava';
import { missingRequiredKeys } from '../src/emulate/report_json.js';
import { pagesPer, runWithJson, tablesToMap } from './_emulate.js';
import type { Json } from './_emulate.js';

const BACKINGS = [
  { name: 'anonymous', level: 1, perVcpu: '4M' },
  { name: 'anonymous_thp', level: 2, perVcpu: '4M' },
  { name: 'anonymous_hugetlb_2mb', level: 2, perVcpu: '6M' },
  { name: 'anonymous_hugetlb_1gb', level: 3, perVcpu: '512M' },
] as const;
const VCPUS = 2;
const MiB = 2 ** 20;

function phase(r: Json, name: string): Json {
  const p = (r.phases as Json[]).find((x) => x.name === name);
  if (p === undefined) throw new Error(`no phase ${name}`);
  return p;
}

for (const b of BACKINGS) {
  for (const manualProtect of [true, false]) {
    for (const eager of [true, false]) {
      // Both root depths for every backing: 5 levels when exactly one of the two switches is on.
      const levels = manualProtect !== eager ? 5 : 4;
      const title = `${b.name}, ${manualProtect ? 'manual-protect' : '-g'}, eager split ${eager ? 'on' : 'off'}, ${levels} levels`;
      test.serial(title, async (t) => {
        const args = ['-v', `${VCPUS}`, '-b', b.perVcpu, '-s', b.name, '--levels', `${levels}`, '--eager-split', eager ? 'on' : 'off'];
        if (!manualProtect) args.push('-g');
        const res = await runWithJson(args, { timeoutMs: 30_000 });
        t.is(res.code, 0, res.stderr);
        const r = res.report;
        t.deepEqual(missingRequiredKeys(r), []);
        const P = (VCPUS * Number.parseInt(b.perVcpu, 10) * MiB) / 4096;
        t.is(r.guest.pages4k, P);

        // Populate maps everything at the backing's page size.
        const pop = phase(r, 'populate');
        const key = ['', '4k', '2m', '1g'][b.level]!;
        t.is(pop.pagesAfter[key], P / pagesPer(b.level), 'leaves after populate');
        t.is(pop.counters.tablesAllocated, tablesToMap(P, b.level, levels), 'tables installed by populate');
        t.is(pop.vcpu.accesses, P);

        // Every huge page is split (eagerly, or on the write faults of iteration 2 at the latest).
        const split1g = b.level === 3 ? P / pagesPer(3) : 0;
        const split2m = b.level >= 2 ? P / pagesPer(2) : 0;
        t.is(r.split.splits1gTo2m, split1g);
        t.is(r.split.splits2mTo4k, split2m);
        t.is(r.split.hugePagesSplit, split1g + split2m);
        t.is(r.split.splitterHugePagesSplit, eager ? split1g + split2m : 0, 'splits by the splitter');
        t.is(r.split.splitByVcpus, eager ? 0 : split1g + split2m, 'splits on vCPU faults');
        // One page table per split, installed outside populate.
        const tablesAfterPopulate = (r.phases as Json[]).filter((p) => p.kind !== 'populate').reduce((a: number, p: Json) => a + p.counters.tablesAllocated, 0);
        t.is(tablesAfterPopulate, split1g + split2m, 'one table per split');
        t.is(r.split.tablesAllocated, tablesToMap(P, b.level, levels) + split1g + split2m);
        if (eager && b.level >= 2) {
          // Where the split happened: the first CLEAR (write lock) or enable (read lock).
          const at = phase(r, manualProtect ? 'iteration 1 clear' : 'enable');
          t.is(at.hugePagesSplit, split1g + split2m);
          t.true(r.split.sptes4kProduced === split2m * 512 && r.split.nsPer4kSpte > 0);
        }
        t.is(phase(r, 'iteration 2 dirty').pagesAfter['4k'], P, 'all 4K after the splits');

        // The dirty log reports exactly the pages written (every page on iteration 1 with initially-set).
        for (const it of r.iterations as Json[]) {
          t.is(it.pagesWritten, P);
          t.is(it.dirtyPages, P);
          t.true(it.dirtyPagesOk);
          t.is(it.clearDirtyLogSeconds === null, !manualProtect);
        }
        t.true(r.dirtyLog.ok);
        t.is(r.dirtyLog.lostDirty, 0);

        // Disabling dirty logging recovers huge pages: their 4K leaves are zapped.
        t.is(r.pages['4k'], b.level === 1 ? P : 0);
        t.true(r.invariants.ok, JSON.stringify(r.invariants.violations));
        t.is(r.invariants.poisonReads, 0);
        t.is(r.invariants.xlateErrors, 0);
        t.true(r.rcu.gracePeriods > 0);
        t.is(r.config.levels, levels);
        t.is(r.config.manualProtect, manualProtect);
        // The text report has the selftest's lines.
        t.regex(res.stdout, /^Populate memory time: \d+\.\d{9}s$/m);
        t.regex(res.stdout, /^Iteration 2 dirty memory time: \d+\.\d{9}s$/m);
        t.regex(res.stdout, /^Get dirty log over 2 iterations took \d+\.\d{9}s\. \(Avg \d+\.\d{9}s\/iteration\)$/m);
        t.is(/^Clear dirty log over/m.test(res.stdout), manualProtect);
      });
    }
  }
}

test.serial('5 levels read more SPTEs than 4 for the same guest, and install one more table', async (t) => {
  const args = ['-v', '1', '-b', '8M', '-s', 'anonymous'];
  const [four, five] = [await runWithJson([...args, '--levels', '4']), await runWithJson([...args, '--levels', '5'])];
  t.is(four.code, 0, four.stderr);
  t.is(five.code, 0, five.stderr);
  t.is(phase(five.report, 'populate').counters.tablesAllocated, phase(four.report, 'populate').counters.tablesAllocated + 1);
  t.true(five.report.split.spteReads > four.report.split.spteReads);
});

test.serial('several memslots, random order, 50% writes: dirty pages equal distinct pages written', async (t) => {
  const res = await runWithJson(['-v', '3', '-b', '4M', '-x', '3', '-a', '-w', '50', '-i', '3', '-r', '7']);
  t.is(res.code, 0, res.stderr);
  const r = res.report;
  t.is(r.guest.memslots.length, 3);
  const P = r.guest.pages4k;
  for (const it of r.iterations as Json[]) {
    t.true(it.dirtyPagesOk, JSON.stringify(it));
    if (it.iteration > 1) {
      t.true(it.pagesWritten > 0 && it.pagesWritten < P, `random writes touch part of the guest (${it.pagesWritten})`);
      t.is(it.dirtyPages, it.pagesWritten);
    } else {
      t.is(it.dirtyPages, P, 'initially-set');
    }
  }
  t.true(r.invariants.ok);
});
