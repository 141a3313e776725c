/**
 * Reclamation under pressure: what a page-table allocation does when the pool's free list is
 * empty, before it reports ENOMEM.
 *
 * Why it is needed. Tables unlinked from the tree wait out an RCU grace period (PtPool
 * freeAfterGracePeriod). Our callbacks run only on the thread that queued them, and only when that
 * thread polls or synchronizes; nothing else drives grace periods. Under zap-heavy churn the
 * freed tables pile up behind grace periods (the 5-level soak once ended with 5750 of 6176 tables
 * "waiting for RCU", 360 live) and vCPU faults failed although the live tables fit many times
 * over. The kernel does not fail there, for three reasons this module models:
 *   - RCU callbacks are invoked by the RCU core (softirq or rcuc/rcuo kthreads) as soon as their
 *     grace period ends, whatever the task that called call_rcu() is doing. Here any thread reaps
 *     tables whose grace period has ended (PtPool.reapExpired, on the polled grace-period cookie
 *     each free records), instead of waiting for the freer to poll.
 *   - A GFP_KERNEL allocation that finds the free lists empty enters direct reclaim, whose
 *     shrink_slab() runs kvfree_rcu's shrinker (kfree_rcu_shrink_scan, Linux 5.7+): it frees the
 *     deferred objects whose grace period has ended and starts grace periods for the rest. And
 *     __call_rcu_core() (tree RCU, every 5.x/6.x) answers a callback flood past `qhimark` by
 *     starting or forcing a grace period. Here the sleeping allocation pushes a grace period
 *     itself (rcu.synchronize(), our expedited grace period: it starts at once and parks only on
 *     readers still inside a section) and reaps again.
 *   - GFP_NOWAIT has no __GFP_DIRECT_RECLAIM: it takes what the free lists hold and fails fast.
 *     Code inside an RCU read-side section or under mmu_lock (a spinning rwlock: might_sleep()
 *     would fire) can only allocate that way. Waiting for a grace period inside a read-side
 *     section would wait for the caller's own section (a deadlock); under mmu_lock it would stall
 *     every thread queued on the lock for a grace period, and deadlock should a reader that the
 *     grace period waits for ever wait for mmu_lock.
 * The vCPU fault tops up its cache before taking mmu_lock, outside the RCU read side
 * (mmu_topup_memory_caches with GFP_KERNEL_ACCOUNT, in kvm_mmu_page_fault's path; guest_access.ts
 * slowFault), so it may wait: it fails only when live tables (in use or in caches) fill the pool.
 *
 * The protocol (allocRawUnderPressure), entered only when PtPool.allocRaw() returned -1, so an
 * allocation that finds a free table costs exactly what it did before:
 *   1. count the pressure allocation (POOL_PRESSURE_ALLOCS);
 *   2. reap: reclaim every RCU-waiting table whose grace period has already ended, whichever
 *      thread freed it (never blocks; legal in any context), then retry the free list;
 *   3. may this caller sleep? Only a blocking allocation (GFP_KERNEL) made outside every RCU
 *      read-side section and without mmu_lock. Otherwise stop: count POOL_PRESSURE_FAIL_FAST and
 *      return -1 (GFP_NOWAIT's answer);
 *   4. while tables still wait for RCU, at most MAX_PRESSURE_GRACE_PERIODS times: push a grace
 *      period (synchronize(), counted in POOL_PRESSURE_GPS; it also runs this thread's own ripe
 *      callbacks), reap, retry the free list. Tables freed by other threads during one grace
 *      period are reaped after the next;
 *   5. nothing waits for RCU any more, or the rounds are used up: return -1. The pool is full of
 *      live tables: ENOMEM.
 * Tables reaped here may be taken by a concurrent allocation before our retry: they are live
 * then, and the loop goes on while anything still waits.
 *
 * Counting: the pool's control words (PoolAccounting pressureAllocs, pressureGracePeriods,
 * reapedTables, pressureFailFast), shared by every thread and touched only under pressure.
 */
import type { RcuReader } from 'epoch-rcu';
import type { PtPool } from './pt_pool.js';

/**
 * Grace periods one allocation may push before it reports ENOMEM. One suffices for every table
 * freed before the call; the others cover tables that other threads free (and that concurrent
 * allocations take) meanwhile. 16 is the page allocator's MAX_RECLAIM_RETRIES (mm/page_alloc.c),
 * its bound on direct-reclaim rounds without progress.
 */
const MAX_PRESSURE_GRACE_PERIODS = 16;

export interface PoolReclaimOptions {
  /**
   * CONTROL ONLY (the no-wait test's broken variant): step 3 ignores the caller's context, so a
   * blocking allocation inside RCU or under mmu_lock pushes a grace period there.
   */
  readonly unsafeWaitInAnyContext?: boolean;
}

export class PoolReclaim {
  readonly pool: PtPool;
  readonly rcu: RcuReader;
  /** Does this thread hold mmu_lock now (MmuLock.isHeldByThisThread)? */
  readonly #mmuLockHeld: () => boolean;
  readonly #unsafeWaitAnywhere: boolean;

  constructor(pool: PtPool, rcu: RcuReader, mmuLockHeld: () => boolean, opts: PoolReclaimOptions = {}) {
    this.pool = pool;
    this.rcu = rcu;
    this.#mmuLockHeld = mmuLockHeld;
    this.#unsafeWaitAnywhere = opts.unsafeWaitInAnyContext === true;
  }

  /**
   * The protocol above, for an allocation whose allocRaw() found the free list empty. `blocking`:
   * the caller asked for GFP_KERNEL (it still waits only outside RCU and mmu_lock). Returns a
   * table (zeroed, IN_USE, as allocRaw) or -1 for ENOMEM.
   */
  allocRawUnderPressure(blocking: boolean): number {
    const pool = this.pool;
    const rcu = this.rcu;
    // Step 1.
    pool.countPressure('alloc');
    // Step 2.
    pool.reapExpired(rcu);
    let t = pool.allocRaw();
    if (t >= 0) return t;
    // Step 3.
    if (!blocking || (!this.#unsafeWaitAnywhere && (rcu.isInReadSide() || this.#mmuLockHeld()))) {
      pool.countPressure('failFast');
      return -1;
    }
    // Step 4.
    for (let round = 0; round < MAX_PRESSURE_GRACE_PERIODS && pool.rcuWaitingCount() > 0; round++) {
      pool.countPressure('gracePeriod');
      rcu.synchronize();
      pool.reapExpired(rcu);
      t = pool.allocRaw();
      if (t >= 0) return t;
    }
    // Step 5.
    return -1;
  }
}
