// Progress (stderr, TTY only, after a delay) and the watchdog (fires once when the probe stops
// moving, never while it moves), as units with fake streams and probes.
import test from 'ava';
import { Progress } from '../src/emulate/progress.js';
import { Watchdog } from '../src/emulate/watchdog.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function fakeStream(): { write(s: string): boolean; columns: number; out: string[] } {
  const out: string[] = [];
  return {
    out,
    columns: 80,
    write: (s: string) => {
      out.push(s);
      return true;
    },
  };
}

test('progress prints the phase and elapsed time after its delay, then erases the line', async (t) => {
  const s = fakeStream();
  const p = new Progress({ enabled: true, stream: s, delayMs: 20, intervalMs: 10 });
  p.setPhase('iteration 2 of 5: dirty', () => '40% of the pages');
  p.start();
  t.deepEqual(s.out, [], 'nothing before the delay');
  await sleep(80);
  p.stop();
  t.true(s.out.length >= 2);
  t.regex(s.out[0]!, /^\r\[emulate \d+\.\ds\] iteration 2 of 5: dirty \(40% of the pages\)\x1b\[K$/);
  t.is(s.out.at(-1), '\r\x1b[K');
  t.regex(p.line(), /^\[emulate \d+\.\ds\] iteration 2 of 5: dirty/);
});

test('progress prints nothing when disabled (not a TTY, or --quiet) or when the run is short', async (t) => {
  const off = fakeStream();
  const p = new Progress({ enabled: false, stream: off, delayMs: 0, intervalMs: 5 });
  p.start();
  await sleep(30);
  p.stop();
  t.deepEqual(off.out, []);
  const short = fakeStream();
  const q = new Progress({ enabled: true, stream: short, delayMs: 1000 });
  q.start();
  q.stop();
  await sleep(20);
  t.deepEqual(short.out, [], 'a run shorter than the delay stays silent');
});

test('the watchdog fires once when the probe stops moving, not while it moves', async (t) => {
  let v = 0;
  let fired = 0;
  let idle = 0;
  const moving = new Watchdog({ timeoutMs: 60, pollMs: 10, probe: () => ++v, onStuck: () => fired++ });
  moving.start();
  await sleep(200);
  moving.stop();
  t.is(fired, 0);
  const stuck = new Watchdog({
    timeoutMs: 60,
    pollMs: 10,
    probe: () => 42,
    onStuck: (ms) => {
      fired++;
      idle = ms;
    },
  });
  stuck.start();
  await sleep(200);
  stuck.stop();
  t.is(fired, 1);
  t.true(stuck.fired);
  t.true(idle >= 60);
  // Disabled with timeout 0.
  const off = new Watchdog({ timeoutMs: 0, probe: () => 1, onStuck: () => fired++ });
  off.start();
  await sleep(30);
  off.stop();
  t.is(fired, 1);
});
