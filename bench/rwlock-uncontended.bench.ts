/**
 * Question: what does an uncontended RwLock acquire+release cost, next to the cheapest thing it
 * could be (two Atomics.add: one to take, one to give back)?
 *
 * One thread, one lock, nobody else: every acquire takes the fast path. The floor is measured in
 * the same run (machine-floors.md: Node 20 calls a builtin per Atomics op, ~8.8 ns per add).
 * Targets: read lock+unlock <= 1.1x the floor, write lock+unlock <= 1.2x.
 */
import { RwLock, RWLOCK_INT32S } from 'atomics-lock';
import { floorTwoAtomicAdds, medianNsPerOp, printRatioTable } from './_lib.js';

const INNER = 20_000; // operations per tinybench sample
const TIME_MS = 1_000; // sampling time per task

const view = new Int32Array(new SharedArrayBuffer(RWLOCK_INT32S * 4));
RwLock.initialize(view, 0);
const lock = new RwLock(view, 0, { debug: false });
const debugLock = new RwLock(view, 0, { debug: true, holderId: 1 });

const floor = floorTwoAtomicAdds();
const results = await medianNsPerOp(
  [
    floor,
    {
      name: 'readLock+readUnlock',
      body: (n) => {
        for (let i = 0; i < n; i++) {
          lock.readLock();
          lock.readUnlock();
        }
      },
    },
    {
      name: 'writeLock+writeUnlock',
      body: (n) => {
        for (let i = 0; i < n; i++) {
          lock.writeLock();
          lock.writeUnlock();
        }
      },
    },
    {
      name: 'tryReadLock+readUnlock',
      body: (n) => {
        for (let i = 0; i < n; i++) {
          if (lock.tryReadLock()) lock.readUnlock();
        }
      },
    },
    {
      name: 'debug mode: readLock+readUnlock',
      body: (n) => {
        for (let i = 0; i < n; i++) {
          debugLock.readLock();
          debugLock.readUnlock();
        }
      },
    },
  ],
  { inner: INNER, timeMs: TIME_MS },
);

const f = results.get(floor.name)!;
const get = (name: string): number => results.get(name)!;
printRatioTable('RwLock uncontended (1 thread), median ns per lock+unlock pair', [
  { figure: 'read lock+unlock', value: get('readLock+readUnlock'), floorName: '2x Atomics.add', floor: f, target: 1.1 },
  { figure: 'write lock+unlock', value: get('writeLock+writeUnlock'), floorName: '2x Atomics.add', floor: f, target: 1.2 },
  { figure: 'tryReadLock+unlock', value: get('tryReadLock+readUnlock'), floorName: '2x Atomics.add', floor: f },
  { figure: 'debug read lock+unlock', value: get('debug mode: readLock+readUnlock'), floorName: '2x Atomics.add', floor: f },
]);
const s = lock.stats();
if (s.contendedReads + s.contendedWrites !== 0) throw new Error('uncontended bench took the slow path');
