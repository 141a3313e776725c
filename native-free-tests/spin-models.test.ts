/**
 * Model checks with SPIN: the Promela models in models/spin/ of the lock (atomics_lock.pml, after
 * packages/atomics-lock/src/) and of the RCU (rcu.pml, after packages/epoch-rcu/src/). Each check runs `spin -a`, compiles
 * pan.c with gcc -O0 and runs pan in its own temporary directory, then reads pan's report:
 *  - a correct model's search must complete (no depth truncation, no memory bound, errors: 0);
 *    an exhaustive one must also be a full state-space search;
 *  - each broken variant (a -D flag on the same model file) must be refuted: errors >= 1 and a
 *    trail file written.
 * Configurations and state counts: models/spin/README.md. Two checks run at a time (2 cores).
 *
 * Without `spin` or `gcc` the checks cannot run: under CI=true that is a failure, elsewhere the
 * checks are skipped with a loud message.
 */
import test from 'ava';
import { execFile, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MODELS = fileURLToPath(new URL('../../models/spin/', import.meta.url));
const PARALLEL = 2;
const MAX_BUFFER = 64 * 1024 * 1024;

type Expect = 'exhaustive' | 'bitstate' | 'liveness' | 'refuted';

/** One pan run: the model, the -D flags for spin (the model's own) and gcc (pan's), pan's arguments. */
interface Check {
  readonly name: string;
  readonly model: string;
  readonly spin: readonly string[];
  readonly gcc: readonly string[];
  readonly pan: readonly string[];
  readonly expect: Expect;
}

const SAFETY = ['-DSAFETY', '-DMEMLIM=2048'];
const LIVE = ['-DNFAIR=3', '-DMEMLIM=2048'];

const CHECKS: readonly Check[] = [
  // atomics-lock: thread 0 writes, 1 reads, 2 reads or writes and may time out (3 threads).
  { name: 'lock: safety, 3 threads, exhaustive', model: 'atomics_lock.pml', spin: ['-DOPS=1'], gcc: SAFETY, pan: ['-m10000', '-w22'], expect: 'exhaustive' },
  {
    name: 'lock: safety, 4 threads, bitstate',
    model: 'atomics_lock.pml',
    spin: ['-DOPS=1', '-DNTHREADS=4'],
    gcc: ['-DSAFETY', '-DBITSTATE'],
    pan: ['-m10000', '-w24'],
    expect: 'bitstate',
  },
  {
    name: 'lock: no lost wake-up, 3 threads, weak fairness',
    model: 'atomics_lock.pml',
    spin: ['-DOPS=1', '-DLIVENESS'],
    gcc: LIVE,
    pan: ['-a', '-f', '-m20000', '-w22'],
    expect: 'liveness',
  },
  {
    name: 'lock broken: PARKED tested before the release',
    model: 'atomics_lock.pml',
    spin: ['-DOPS=1', '-DLIVENESS', '-DBROKEN_PARKED_LATE'],
    gcc: LIVE,
    pan: ['-a', '-f', '-m20000', '-w22'],
    expect: 'refuted',
  },
  {
    name: 'lock broken: a timed-out waiter leaves without re-checking SERVING',
    model: 'atomics_lock.pml',
    spin: ['-DOPS=1', '-DBROKEN_LEAVE_NO_RECHECK'],
    gcc: SAFETY,
    pan: ['-m10000', '-w22'],
    expect: 'refuted',
  },
  {
    name: 'lock broken: the writer head ignores the readers',
    model: 'atomics_lock.pml',
    spin: ['-DOPS=1', '-DBROKEN_WRITER_IGNORES_READERS'],
    gcc: SAFETY,
    pan: ['-m10000', '-w22'],
    expect: 'refuted',
  },
  // rcu: thread 0 an epoch reader, 1 a QSBR reader, 2 an updater that may time out; UPDATERS=6 lets 1 update too.
  {
    name: 'rcu: safety, 3 threads, exhaustive',
    model: 'rcu.pml',
    spin: ['-DOPS=1', '-DUPDATERS=6'],
    gcc: SAFETY,
    pan: ['-m10000', '-w22'],
    expect: 'exhaustive',
  },
  {
    name: 'rcu: safety, 4 threads, bitstate',
    model: 'rcu.pml',
    spin: ['-DOPS=1', '-DNTHREADS=4', '-DUPDATERS=12'],
    gcc: ['-DSAFETY', '-DBITSTATE'],
    pan: ['-m10000', '-w24'],
    expect: 'bitstate',
  },
  {
    name: 'rcu: no lost wake-up, 3 threads, weak fairness',
    model: 'rcu.pml',
    spin: ['-DOPS=1', '-DUPDATERS=4', '-DLIVENESS'],
    gcc: LIVE,
    pan: ['-a', '-f', '-m20000', '-w22'],
    expect: 'liveness',
  },
  {
    name: 'rcu broken: a QSBR reader reads before it is seen online',
    model: 'rcu.pml',
    spin: ['-DOPS=2', '-DUPDATERS=4', '-DBROKEN_ONLINE_LATE'],
    gcc: SAFETY,
    pan: ['-m10000', '-w22'],
    expect: 'refuted',
  },
  {
    name: 'rcu broken: callRcu snapshots the grace period in progress',
    model: 'rcu.pml',
    spin: ['-DOPS=1', '-DUPDATERS=6', '-DBROKEN_CB_SNAP'],
    gcc: SAFETY,
    pan: ['-m10000', '-w22'],
    expect: 'refuted',
  },
  {
    name: 'rcu broken: readUnlock ignores a parked synchronize',
    model: 'rcu.pml',
    spin: ['-DOPS=1', '-DUPDATERS=4', '-DLIVENESS', '-DBROKEN_UNLOCK_STORE'],
    gcc: LIVE,
    pan: ['-a', '-f', '-m20000', '-w22'],
    expect: 'refuted',
  },
];

/** The figures read from pan's report. */
interface PanReport {
  readonly errors: number;
  readonly stored: number;
  readonly depthTooSmall: boolean;
  readonly notCompleted: boolean;
  readonly memoryBound: boolean;
  readonly fullSearch: boolean;
  readonly elapsedS: number;
  /** Bitstate runs: bits per state (pan: "best if > 100"); a coverage estimate. */
  readonly hashFactor: number;
}

function parsePan(out: string): PanReport {
  const num = (re: RegExp): number => {
    const m = re.exec(out);
    return m === null ? Number.NaN : Number(m[1]);
  };
  return {
    errors: num(/errors: (\d+)/),
    stored: num(/(\d+) states, stored/),
    depthTooSmall: /search depth too small/.test(out),
    notCompleted: /Search not completed/.test(out),
    memoryBound: /reached -DMEMLIM bound/.test(out),
    fullSearch: /Full statespace search for:/.test(out),
    elapsedS: num(/pan: elapsed time ([\d.e+]+) seconds/),
    hashFactor: num(/hash factor: ([\d.e+]+)/),
  };
}

function run(cmd: string, args: readonly string[], cwd: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, maxBuffer: MAX_BUFFER, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

/** At most PARALLEL checks at once, in list order. */
let running = 0;
const queue: (() => void)[] = [];
async function slot<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= PARALLEL) await new Promise<void>((resolve) => queue.push(resolve));
  running++;
  try {
    return await fn();
  } finally {
    running--;
    queue.shift()?.();
  }
}

function toolMissing(): string | undefined {
  for (const [tool, arg] of [
    ['spin', '-V'],
    ['gcc', '--version'],
  ] as const) {
    const r = spawnSync(tool, [arg], { encoding: 'utf8' });
    if (r.error !== undefined || r.status !== 0) return tool;
  }
  return undefined;
}

const missing = toolMissing();
if (missing !== undefined) {
  const msg = `SPIN model checks NOT RUN: \`${missing}\` is not installed (apt-get install spin gcc)`;
  if (process.env['CI'] === 'true') {
    test('SPIN model checks (spin and gcc are required under CI=true)', (t) => {
      t.fail(msg);
    });
  } else {
    console.warn(`\n*** ${msg} ***\n`);
    test.skip(`SPIN model checks: ${msg}`, (t) => {
      t.log(msg);
      t.pass();
    });
  }
} else {
  for (const c of CHECKS) {
    test(c.name, async (t) => {
      t.timeout(10 * 60_000, 'a SPIN check'); // the machine is shared: generous per check
      await slot(async () => {
        const dir = mkdtempSync(join(tmpdir(), 'spin-model-'));
        try {
          copyFileSync(join(MODELS, c.model), join(dir, c.model));
          const t0 = performance.now();
          const gen = await run('spin', [...c.spin, '-a', c.model], dir);
          t.is(gen.code, 0, `spin -a failed:\n${gen.out}`);
          // -O0: gcc -O2 spends about 4 s CPU on pan.c against 1 s at -O0, while these searches run
          // only 10-20 % faster optimised (measured on the project machine): compiling is the cost.
          const cc = await run('gcc', ['-O0', ...c.gcc, '-o', 'pan', 'pan.c'], dir);
          t.is(cc.code, 0, `gcc failed:\n${cc.out}`);
          const t1 = performance.now();
          const pan = await run('./pan', c.pan, dir);
          const t2 = performance.now();
          const r = parsePan(pan.out);
          t.log(
            `${r.stored} states stored${Number.isNaN(r.hashFactor) ? '' : ` (hash factor ${r.hashFactor})`}, pan ${r.elapsedS} s; spin+gcc ${((t1 - t0) / 1000).toFixed(1)} s, pan ${((t2 - t1) / 1000).toFixed(1)} s wall (noisy)`,
          );
          const trail = existsSync(join(dir, `${c.model}.trail`));
          if (c.expect === 'refuted') {
            t.true(r.errors >= 1, `the broken variant was not refuted:\n${pan.out}`);
            t.true(trail, `no trail file written:\n${pan.out}`);
            const first = /^pan:1: .*$/m.exec(pan.out);
            t.log(`refuted: ${first === null ? '(no message)' : first[0]}`);
          } else {
            t.is(r.errors, 0, `the model has an error:\n${pan.out}`);
            t.false(trail, 'a trail file was written');
            t.false(r.depthTooSmall, `search depth too small (raise -m):\n${pan.out}`);
            t.false(r.memoryBound, `the search hit its memory bound:\n${pan.out}`);
            t.false(r.notCompleted, `the search did not complete:\n${pan.out}`);
            t.true(r.stored > 0, `no state count in pan's report:\n${pan.out}`);
            if (c.expect === 'exhaustive') t.true(r.fullSearch, `not a full state-space search:\n${pan.out}`);
            if (c.expect === 'bitstate') t.regex(pan.out, /Bit statespace search for:/);
            if (c.expect === 'liveness') t.regex(pan.out, /acceptance\s+cycles\s+\+ \(fairness enabled\)/);
          }
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });
    });
  }
}
