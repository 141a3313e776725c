/*
 * rcu.pml: a Promela model of the RCU in packages/epoch-rcu/src/ (RcuReader in reader.ts, runGracePeriod and
 * the grace-period lock in grace_period.ts, CallbackQueue in callbacks.ts, the word layout of
 * layout.ts; RcuDomain in domain.ts only initialises and registers, modelled by init).
 *
 * Every JS `Atomics.*` call is one atomic Promela step; JS Atomics are seq_cst, so interleaving
 * whole atomic operations is their exact semantics. Thread-local JS state (seq, depth, online,
 * the callback queue, which lives in plain thread-local memory) are Promela locals. Comments
 * quote the TypeScript statement each step models, as `file: function: statement`.
 *
 * Each thread is a registered reader (as every RcuReader is: synchronize() and callRcu() are
 * reader methods), 'epoch' or 'qsbr' by QSBR_THREADS. The protected data is one pointer `ptr`
 * to an object; an update stores a fresh object (the emulator serialises updaters under
 * mmu_lock: one atomic exchange here) and retires the old one by callRcu(free) or by
 * synchronize() then free. `held[i]` is the object reader i may still dereference: set by its
 * Atomics.load of ptr inside a read-side section (epoch) or while online (qsbr), cleared by the
 * exchange that ends the section (R3). Safety: free() asserts no reader holds the object and it
 * was not freed before; at the end every retired object was freed (no callback lost).
 *
 * Abstractions (see README.md):
 *  - The reader's state word keeps the code's layout (bit 0 ACTIVE, bit 1 WAITER, the private
 *    sequence above) in a byte; H_GP_SEQ is a byte. Runs are bounded (OPS rounds a thread,
 *    then unregister()), so neither wraps, and the code's wrap-safe gpDone() is `>=`.
 *  - Time: a deadline is a per-thread flag `expired` (see atomics_lock.pml).
 *  - spinLimit polls are extra loads: SPIN_LIMIT 0 (park at once) is modelled.
 *  - Atomics.wait / notify are a futex (sleeper sets); notify(idx, 1) wakes any one sleeper.
 *  - Nested readLock only counts depth: one level is modelled. An epoch reader's offline() and
 *    online() only flip thread-local flags (nothing shared): only QSBR readers go offline here.
 *
 * Broken variants (each must be refuted by SPIN):
 *  -DBROKEN_ONLINE_LATE   a QSBR reader that comes online() reads ptr before publishing ACTIVE:
 *                         a grace period that scans it in between ignores a reader that just
 *                         went online, and frees what it holds.
 *  -DBROKEN_CB_SNAP       callRcu() snapshots H_GP_SEQ + 2 (the end of the grace period in
 *                         progress) instead of gpSnap(): a grace period whose scan already
 *                         passed a reader ripens the callback.
 *  -DBROKEN_UNLOCK_STORE  readUnlock() ends the section with a store, ignoring WAITER: a parked
 *                         synchronize() is never notified (a lost wake-up).
 */

#ifndef NTHREADS
#define NTHREADS 3
#endif
#ifndef OPS
#define OPS 1 /* rounds per thread before unregister() */
#endif
#ifndef QSBR_THREADS
#define QSBR_THREADS 2 /* bit i: thread i is a 'qsbr' reader; the others are 'epoch' */
#endif
#ifndef UPDATERS
#define UPDATERS 6 /* bit i: thread i may update (callRcu / synchronize); the rest only read */
#endif
#ifndef TIMED_THREADS
#define TIMED_THREADS 4 /* bit i: thread i may also call synchronize(timeoutMs) */
#endif
#ifndef MAXPEND
#define MAXPEND 2 /* RcuReaderOptions.maxPendingCallbacks (default 1024) */
#endif
#define MAXCB OPS /* at most one callRcu per round */

/* layout.ts */
#define STATE_ACTIVE 1
#define STATE_WAITER 2
#define STATE_SEQ_STEP 4
#define ID_MASK 253 /* STATE_ID_MASK = ~STATE_WAITER */
/* layout.ts gpSnap(seq): "((seq + 3) & ~1) | 0"; gpDone(seq, snap): "((seq - snap) | 0) >= 0" */
#define GP_SNAP(x) (((x) + 3) & 254)
#define GP_DONE(x, snap) ((x) >= (snap))

#define NONE 255
#define NOBJ (NTHREADS * OPS + 1)

byte gpSeq = 0;          /* H_GP_SEQ */
byte gpLock = 0;         /* H_GP_LOCK: 0 free, 1 held, 2 held with parked waiters */
byte gpLockSleepers = 0; /* futex sleepers on H_GP_LOCK */
byte state[NTHREADS];    /* S_STATE of each reader's slot */
byte stateSleepers[NTHREADS];

byte ptr = 0;            /* the RCU-protected pointer: object 0 first */
byte nextObj = 1;
bool freed[NOBJ];
byte held[NTHREADS];     /* the object reader i may dereference, or NONE */
byte retired = 0;
byte nFreed = 0;
byte finished = 0;

#define BIT (1 << me)

/* Atomics.wait(word, expected, timeout): compare and sleep in one step; a notify, or (timed)
 * the deadline, ends the sleep. */
inline FUTEX_WAIT(word, sleepers, expected) {
  d_step {
    if
    :: word == (expected) -> sleepers = sleepers | BIT; slept = true
    :: else -> slept = false
    fi
  }
  if
  :: slept ->
     if
     :: (sleepers & BIT) == 0 -> skip
     :: timed -> d_step { expired = true; sleepers = sleepers & ~BIT }
     fi
  :: else -> skip
  fi
}

/* "now >= deadline" (remaining(deadline) <= 0): once expired, always. */
inline CHECK_DEADLINE() {
  if
  :: expired -> deadlinePassed = true
  :: timed && !expired -> expired = true; deadlinePassed = true
  :: !expired -> deadlinePassed = false
  fi
}

/* free(obj), the retired object's callback: nobody may still dereference it. */
inline FREE(o) {
  assert(!freed[o]);
  assert(held[0] != o && (NTHREADS < 2 || held[1] != o) && (NTHREADS < 3 || held[2] != o) && (NTHREADS < 4 || held[3] != o));
  freed[o] = true;
  nFreed++
}

/* reader.ts #publishInactive(): "const old = Atomics.exchange(this.view, this.stateIdx, s); if ((old & STATE_WAITER) !== 0) Atomics.notify(...)"
 * (R3). The exchange ends whatever the reader held. */
inline PUBLISH_INACTIVE() {
  d_step { seq = seq + STATE_SEQ_STEP; old = state[me]; state[me] = seq; held[me] = NONE }
  if
  :: (old & STATE_WAITER) != 0 -> d_step { stateSleepers[me] = 0 }
  :: else -> skip
  fi
}

/* reader.ts #publishActive(): "Atomics.store(this.view, this.stateIdx, s | STATE_ACTIVE);" (R1) */
inline PUBLISH_ACTIVE() {
  d_step { seq = seq + STATE_SEQ_STEP; state[me] = seq | STATE_ACTIVE }
}

/* reader.ts pollCallbacks(): run the ripe callbacks, oldest first (callbacks.ts shiftRipe). */
inline POLL_CALLBACKS() {
  /* One step: the load of H_GP_SEQ and the callbacks it makes ripe. Each free() asserts that no
   * reader holds its object; a retired object is never picked up again, so checking at the load
   * rather than at each later call can only report more, never less. */
  d_step {
    if
    :: cbLen > 0 ->
       g = gpSeq; /* "const seq = Atomics.load(this.view, this.#base + H_GP_SEQ);" */
       do
       :: cbLen > 0 && GP_DONE(g, cbSnap[cbHead]) -> /* shiftRipe: "if (!gpDone(seq, this.#snaps[h]!)) return undefined;" */
          cbo = cbObj[cbHead];
          cbObj[cbHead] = 0; /* "this.#fns[h] = undefined;" */
          cbSnap[cbHead] = 0;
          cbHead = (cbHead + 1) % MAXCB;
          cbLen--;
          if /* "Drained: reset" (lastSnap only counts while the queue is not empty) */
          :: cbLen == 0 -> cbHead = 0; lastSnap = 0
          :: else -> skip
          fi;
          FREE(cbo); /* "fn();" */
          cbo = 0
       :: else -> break
       od;
       g = 0
    :: else -> skip
    fi
  }
}

/* grace_period.ts acquireGpLock(): sets ok = false on deadline. */
inline ACQUIRE_GP_LOCK() {
  d_step { old = gpLock; if :: gpLock == 0 -> gpLock = 1 :: else -> skip fi } /* "Atomics.compareExchange(view, idx, 0, 1) === 0" */
  if
  :: old == 0 -> ok = true
  :: else ->
     do
     :: d_step { old = gpLock; gpLock = 2 }; /* "if (Atomics.exchange(view, idx, 2) === 0) return true;" */
        if
        :: old == 0 -> ok = true; break
        :: else ->
           CHECK_DEADLINE();
           if
           :: deadlinePassed -> ok = false; break
           :: else -> FUTEX_WAIT(gpLock, gpLockSleepers, 2) /* "Atomics.wait(view, idx, 2, rem);" */
           fi
        fi
     od
  fi
}

/* grace_period.ts releaseGpLock(): "if (Atomics.exchange(view, idx, 0) === 2) Atomics.notify(view, idx, 1);" */
inline RELEASE_GP_LOCK() {
  d_step { old = gpLock; gpLock = 0 }
  if
  :: old == 2 ->
     atomic { /* notify one: any one sleeper */
       if
       :: (gpLockSleepers & 1) != 0 -> gpLockSleepers = gpLockSleepers & ~1
       :: (gpLockSleepers & 2) != 0 -> gpLockSleepers = gpLockSleepers & ~2
       :: (gpLockSleepers & 4) != 0 -> gpLockSleepers = gpLockSleepers & ~4
       :: (gpLockSleepers & 8) != 0 -> gpLockSleepers = gpLockSleepers & ~8
       :: gpLockSleepers == 0 -> skip
       fi
     }
  :: else -> skip
  fi
}

/* grace_period.ts waitForSectionEnd(view, idx, seen, ...): sets ok = false on deadline. */
inline WAIT_FOR_SECTION_END(j) {
  do
  :: /* "const cur = Atomics.compareExchange(view, idx, seen, seen | STATE_WAITER);" */
     d_step { cur = state[j]; if :: state[j] == seen[j] -> state[j] = seen[j] | STATE_WAITER :: else -> skip fi }
     if
     :: (cur & ID_MASK) != seen[j] -> ok = true; break /* "the section ended before we flagged it" */
     :: else ->
        CHECK_DEADLINE();
        if
        :: deadlinePassed -> ok = false; break /* "if (rem <= 0) return false;" */
        :: else -> FUTEX_WAIT(state[j], stateSleepers[j], seen[j] | STATE_WAITER) /* "Atomics.wait(view, idx, seen | STATE_WAITER, rem);" */
        fi
     fi
  od
}

/* grace_period.ts runGracePeriod(..., snap, ...): sets ok. */
inline RUN_GRACE_PERIOD() {
  ACQUIRE_GP_LOCK(); /* step 2 */
  if
  :: ok ->
     start = gpSeq; /* step 3: "const start = Atomics.load(view, seqIdx); if (gpDone(start, snap))" */
     if
     :: GP_DONE(start, snap) -> RELEASE_GP_LOCK()
     :: else ->
        gpSeq = start + 1; /* step 4: "Atomics.store(view, seqIdx, (start + 1) | 0);" */
        /* step 5a: "const seen = Atomics.load(view, idx) & STATE_ID_MASK; if ((seen & STATE_ACTIVE) === 0) continue;" */
        j = 0;
        do
        :: j < NTHREADS ->
           if
           :: j != me -> seen[j] = state[j] & ID_MASK
           :: else -> seen[j] = 0 /* "if (slot === selfSlot) continue;" */
           fi;
           j++
        :: else -> break
        od;
        /* step 5b: wait for each section seen in 5a to end */
        j = 0;
        do
        :: j < NTHREADS ->
           if
           :: (seen[j] & STATE_ACTIVE) != 0 -> WAIT_FOR_SECTION_END(j)
           :: else -> skip
           fi;
           if
           :: ok -> j++
           :: else -> break
           fi
        :: else -> break
        od;
        if
        :: ok -> gpSeq = start + 2 /* step 6: "Atomics.store(view, seqIdx, (start + 2) | 0);" */
        :: else -> gpSeq = start   /* "Atomics.store(view, seqIdx, start); // undo step 4" */
        fi;
        RELEASE_GP_LOCK() /* step 7 */
     fi
  :: else -> skip
  fi;
  d_step { j = 0; start = 0; seen[0] = 0; seen[1] = 0; seen[2] = 0; seen[3] = 0; cur = 0 }
}

/* reader.ts synchronize(timeoutMs): sets ok. */
inline SYNCHRONIZE() {
  /* "const snap = gpSnap(Atomics.load(this.view, seqIdx));"
   * "const qsbrOnline = this.#qsbr && this.#online; if (qsbrOnline) this.#publishInactive();" */
  d_step { snap = GP_SNAP(gpSeq); qsbrWasOnline = qsbr && online }
  if
  :: qsbrWasOnline -> PUBLISH_INACTIVE()
  :: else -> skip
  fi;
  RUN_GRACE_PERIOD();
  if
  :: qsbrWasOnline -> PUBLISH_ACTIVE() /* "finally { if (qsbrOnline) this.#publishActive(); }" */
  :: else -> skip
  fi;
  if
  :: ok -> POLL_CALLBACKS() /* "if (ok) this.pollCallbacks();" */
  :: else -> skip
  fi;
  d_step { snap = 0; qsbrWasOnline = false; deadlinePassed = false }
}

/* reader.ts callRcu(fn) with fn = free(o). */
inline CALL_RCU(o) {
  /* One step: one load of H_GP_SEQ, the rest is thread-local (the queue is plain memory). */
  d_step {
    g = gpSeq; /* "gpSnap(Atomics.load(this.view, this.#base + H_GP_SEQ))" */
#ifndef BROKEN_CB_SNAP
    g = GP_SNAP(g);
#else
    g = (g + 2) & 254; /* broken: the end of the grace period in progress */
#endif
    /* callbacks.ts push(fn, snap): "const s = this.#empty || !gpDone(this.#lastSnap, snap) ? snap : this.#lastSnap;" */
    if
    :: cbLen > 0 && GP_DONE(lastSnap, g) -> g = lastSnap
    :: else -> skip
    fi;
    cbObj[(cbHead + cbLen) % MAXCB] = o;
    cbSnap[(cbHead + cbLen) % MAXCB] = g;
    cbLen++;
    lastSnap = g;
    g = 0
  }
  /* "if (this.#queue.length >= this.#maxPending && this.depth === 0 && !this.#qsbr && !this.#polling) this.synchronize();" */
  if
  :: cbLen >= MAXPEND && !qsbr ->
     timed = false;
     SYNCHRONIZE()
  :: else -> skip
  fi
}

/* An update: the emulator's writer stores a new pointer (under mmu_lock): returns the old object. */
inline UPDATE(o) {
  d_step { o = ptr; ptr = nextObj; nextObj++; retired++ }
}

proctype reader(byte me) {
  bool qsbr, online, timed, expired, deadlinePassed, ok, slept, qsbrWasOnline;
  byte seq, old, cur, j, start, snap, g, o, cbo, round;
  byte seen[4];
  byte cbObj[MAXCB];
  byte cbSnap[MAXCB];
  byte cbHead, cbLen, lastSnap;

  /* reader.ts constructor: "Atomics.store(this.view, this.stateIdx, this.#qsbr ? this.seq | STATE_ACTIVE : this.seq);" */
  qsbr = (QSBR_THREADS & BIT) != 0;
  online = true;
  seq = STATE_SEQ_STEP;
  if
  :: qsbr -> state[me] = seq | STATE_ACTIVE
  :: else -> state[me] = seq
  fi;

  round = 0;
  do
  :: round < OPS ->
     round++;
     d_step { expired = false; timed = false; ok = false };
     if
     /* A read. Epoch: readLock(); Atomics.load(ptr); use; readUnlock(). */
     :: !qsbr ->
        /* readLock R1: "Atomics.store(this.view, this.stateIdx, s | STATE_ACTIVE);" */
        d_step { seq = seq + STATE_SEQ_STEP; state[me] = seq | STATE_ACTIVE }
        d_step { held[me] = ptr; assert(!freed[ptr]) } /* the caller's Atomics.load of the pointer */
#ifndef BROKEN_UNLOCK_STORE
        /* readUnlock R3: "const old = Atomics.exchange(this.view, this.stateIdx, this.seq); if ((old & STATE_WAITER) !== 0) Atomics.notify(...)" */
        d_step { seq = seq + STATE_SEQ_STEP; old = state[me]; state[me] = seq; held[me] = NONE }
        if
        :: (old & STATE_WAITER) != 0 -> d_step { stateSleepers[me] = 0 }
        :: else -> skip
        fi
#else
        d_step { seq = seq + STATE_SEQ_STEP; state[me] = seq; held[me] = NONE } /* broken: a store, WAITER ignored */
#endif
     /* A read by an online QSBR reader: the reference stays held until its next quiescent state. */
     :: qsbr && online ->
        d_step { held[me] = ptr; assert(!freed[ptr]) }
     /* QSBR quiescentState(): "const old = Atomics.exchange(this.view, this.stateIdx, s | STATE_ACTIVE);" then pollCallbacks */
     :: qsbr && online ->
        d_step { seq = seq + STATE_SEQ_STEP; old = state[me]; state[me] = seq | STATE_ACTIVE; held[me] = NONE }
        if
        :: (old & STATE_WAITER) != 0 -> d_step { stateSleepers[me] = 0 }
        :: else -> skip
        fi;
        POLL_CALLBACKS()
     /* QSBR offline(): "if (this.#qsbr) this.#publishInactive();" */
     :: qsbr && online ->
        online = false;
        PUBLISH_INACTIVE()
     /* QSBR online(): "if (this.#qsbr) this.#publishActive();" */
     :: qsbr && !online ->
        online = true;
#ifdef BROKEN_ONLINE_LATE
        d_step { held[me] = ptr; assert(!freed[ptr]) } /* broken: reads before it is seen online */
#endif
        PUBLISH_ACTIVE()
     /* An update retired by callRcu(() => free(old)). */
     :: (UPDATERS & BIT) != 0 -> UPDATE(o); CALL_RCU(o); o = 0
     /* An update retired by synchronize(); free(old). */
     :: (UPDATERS & BIT) != 0 -> UPDATE(o);
        SYNCHRONIZE();
        assert(ok); /* no timeout given: "Returns false only if `timeoutMs` was given and ran out" */
        d_step { FREE(o); o = 0 }
     /* synchronize(timeoutMs): may give up (and roll the grace period back). */
     :: (TIMED_THREADS & BIT) != 0 ->
        timed = true;
        SYNCHRONIZE()
     fi
  :: else -> break
  od;

  /* reader.ts unregister(): "this.barrier(); this.offline(); ... this.#publishInactive();" */
  timed = false;
  expired = false;
  POLL_CALLBACKS(); /* barrier(): "this.pollCallbacks(); while (this.#queue.length !== 0) this.synchronize();" */
  do
  :: cbLen > 0 -> SYNCHRONIZE()
  :: else -> break
  od;
  if
  :: qsbr && online -> online = false; PUBLISH_INACTIVE() /* offline() */
  :: else -> online = false
  fi;
  PUBLISH_INACTIVE();
  finished++
}

init {
  byte i;
  atomic {
    i = 0;
    do
    :: i < NTHREADS -> held[i] = NONE; i++
    :: else -> break
    od;
    i = 0;
    do
    :: i < NTHREADS -> run reader(i); i++
    :: else -> break
    od
  }
  /* No callback lost: every retired object was freed once every reader unregistered. */
  (finished == NTHREADS);
  assert(nFreed == retired);
  assert(gpLock == 0 && gpLockSleepers == 0)
}

#ifdef LIVENESS
/* No lost wake-up: under weak fairness every reader finishes (every synchronize() returns). */
ltl allFinish { <> (finished == NTHREADS) }
#endif
