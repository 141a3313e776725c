/*
 * atomics_lock.pml: a Promela model of the reader/writer lock in packages/atomics-lock/src/
 * (RwLock in rwlock.ts, its ticket queue in wait_queue.ts, the word layout of layout.ts).
 * Not modelled: ScalableRwLock (scalable.ts), whose per-reader slots sit in front of an RwLock.
 *
 * Every JS `Atomics.*` call is one atomic Promela step (a d_step): JS Atomics are seq_cst, so
 * an interleaving of whole atomic operations is exactly their semantics. Plain per-thread JS
 * values (locals, `parkedByUs`, `spins`) are Promela locals. Comments quote the TypeScript
 * statement each step models, as `file: function: statement`.
 *
 * Abstractions (see README.md):
 *  - CNTS keeps qrwlock's fields but narrower: LOCKED is 1 bit (the code's whole byte 0xff
 *    is only ever added or subtracted whole), WAITING 2, one reader QR_BIAS is 4, PARKED 64
 *    (the code's sign bit). The arithmetic on the word is the code's, field for field.
 *  - Tickets, SERVING and the WAKE sequence words are bytes (mod 256) instead of Int32 (mod
 *    2^32), with the same signed-difference comparisons as the code's `(a - b) | 0`. TICKET0
 *    starts the queue near the wrap and a generation boundary so both are crossed.
 *  - QUEUE_SLOTS is 8 (the smallest the code allows: the STATE kinds 0..4 must fit below it).
 *  - Time: a deadline is a per-thread flag `expired` that may become true at any deadline
 *    check ("now >= deadline") or while the thread sleeps in a timed Atomics.wait (the wait's
 *    timeout is the time left to the deadline); once true it stays true.
 *  - spinLimit polls are extra loads; SPIN_LIMIT (default 0, the most parking-heavy setting)
 *    bounds them.
 *  - Atomics.wait / Atomics.notify are a futex: a sleeper set per word. wait() compares and
 *    joins the set in one step; it returns only when a notify removes it (or, timed, when its
 *    deadline expires). A wake-up that nobody sends is lost for good, as in real life.
 *  - Each thread does OPS acquire/release rounds, so runs are finite; a lost wake-up shows up
 *    as a thread that never finishes (an invalid end state in the safety runs, an acceptance
 *    cycle against `<> all finished` in the liveness run under weak fairness).
 *
 * Broken variants (each must be refuted by SPIN):
 *  -DBROKEN_PARKED_LATE       unlock tests PARKED in a load taken BEFORE its fetch-sub (instead
 *                             of the value the fetch-sub returns): a head that sets PARKED in
 *                             between sleeps through the release. Refuted by the liveness run.
 *  -DBROKEN_LEAVE_NO_RECHECK  a timed-out waiter marks its ticket ABANDONED and leaves without
 *                             re-checking SERVING (wait_queue.ts #leave step 2-3): the turn a
 *                             head handed it is lost and the queue stalls. Refuted by the safety
 *                             run (NEXT !== SERVING once every thread is done).
 *  -DBROKEN_WRITER_IGNORES_READERS  the writer head takes the lock once the writer byte is
 *                             clear, forgetting the reader count. Refuted by mutual exclusion.
 */

#ifndef NTHREADS
#define NTHREADS 3
#endif
#ifndef OPS
#define OPS 1 /* acquire/release rounds per thread */
#endif
#ifndef SPIN_LIMIT
#define SPIN_LIMIT 0
#endif
/* Roles: bit i of READERS (WRITERS) lets thread i read-lock (write-lock) in a round. */
#ifndef READERS
#define READERS 14 /* threads 1, 2, 3 */
#endif
#ifndef WRITERS
#define WRITERS 13 /* threads 0, 2, 3 */
#endif
#ifndef TIMED_THREADS
#define TIMED_THREADS 4 /* bit i: thread i may give its acquires a timeout (thread 2 by default) */
#endif
#ifndef TICKET0
#define TICKET0 253 /* tickets 253, 254, 255, 0, 1, ...: crosses the wrap and gen 248 -> 0 */
#endif

/* layout.ts: CNTS bit layout (narrowed, see above). */
#define LOCKED 1       /* QW_LOCKED = 0xff */
#define WAITING 2      /* QW_WAITING = 0x100 */
#define WMASK 3        /* QW_WMASK = 0x1ff */
#define BIAS 4         /* QR_BIAS = 1 << 9 */
#define RMASK 60       /* QR_MASK = ~(QW_WMASK | Q_PARKED): up to 15 readers */
#define PARKED 64      /* Q_PARKED = 1 << 31 */
#define NOT_PARKED 191 /* ~Q_PARKED within the byte */

/* layout.ts: QUEUE_SLOTS = 128, QUEUE_MASK; wait_queue.ts: gen(t) = t & ~QUEUE_MASK. */
#define QSLOTS 8
#define QMASK 7
#define GEN(t) ((t) & 248)
/* `(a - b) | 0` as a signed byte: DIFF(a, b) in 0..127 is >= 0, 128..255 is negative. */
#define DIFF(a, b) (((a) - (b)) & 255)
#define NEG(d) ((d) >= 128)

/* wait_queue.ts: STATE kinds. */
#define ST_EMPTY 0
#define ST_READER 1
#define ST_WRITER 2
#define ST_ABANDONED 3
#define ST_GRANTED 4

/* wait_queue.ts: waitTurn() outcomes. */
#define TURN_HEAD 0
#define TURN_GRANTED 1
#define TURN_TIMEOUT 2

/* rwlock.ts: HEAD_READER / HEAD_WRITER. */
#define HEAD_READER 0
#define HEAD_WRITER 1

byte cnts = 0;                /* CNTS */
byte NEXT = TICKET0;          /* NEXT */
byte SERVING = TICKET0;       /* SERVING */
byte QPARKED = 0;             /* QPARKED */
byte WAKE[QSLOTS];            /* WAKE[t % QUEUE_SLOTS] sequence words */
/* STATE[slot] = GEN(t) | kind, all 0 as wait_queue.ts initialize() leaves them ("EMPTY for
 * generation 0"). For TICKET0's generation 248 a 0 matches no READER/WRITER/ABANDONED value,
 * so it acts as EMPTY (never acted on), as a stale slot of an old generation does in the code. */
byte STATE[QSLOTS];

/* Futex sleeper sets (bit `me`): the threads asleep in Atomics.wait on each word. */
byte cntsSleepers = 0;
byte wakeSleepers[QSLOTS];

/* Checks: who is inside a critical section, and how many threads finished their rounds. */
byte nReaders = 0;
byte nWriters = 0;
byte finished = 0;

#define BIT (1 << me)

/* CAS(var, expect, new, res): Atomics.compareExchange(var, expect, new) === expect. */
inline CAS(var, expect, newv, res) {
  d_step {
    if
    :: var == (expect) -> var = (newv); res = true
    :: else -> res = false
    fi
  }
}

/*
 * Atomics.wait(word, expected, timeout): compare and join the sleeper set in one step ('not-equal'
 * otherwise), then sleep until a notify removes us. A timed wait may instead end at the deadline.
 */
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
     :: (sleepers & BIT) == 0 -> skip                               /* 'ok': notified */
     :: timed -> d_step { expired = true; sleepers = sleepers & ~BIT } /* 'timed-out' */
     fi
  :: else -> skip                                                    /* 'not-equal' */
  fi
}

/* `performance.now() >= deadline`: true once expired; a timed thread may find it true at any check. */
#define DEADLINE_PASSED_OPTIONS \
  :: expired -> deadlinePassed = true \
  :: timed && !expired -> expired = true; deadlinePassed = true \
  :: !expired -> deadlinePassed = false

inline CHECK_DEADLINE() {
  if
  DEADLINE_PASSED_OPTIONS
  fi
}

/* rwlock.ts #wakeHead(): "Atomics.and(this.#v, this.#cnts, ~Q_PARKED); Atomics.notify(this.#v, this.#cnts);" */
inline WAKE_HEAD() {
  d_step { cnts = cnts & NOT_PARKED }
  d_step { cntsSleepers = 0 } /* notify with the default count: every sleeper on CNTS */
}

/* rwlock.ts #readUnlockSlow(old): "if (((old - QR_BIAS) & QR_MASK) === 0) this.#wakeHead();" */
inline READ_UNLOCK_SLOW() {
  assert((old & RMASK) != 0); /* "(old & QR_MASK) === 0": an unbalanced unlock never happens here */
  if
  :: ((old - BIAS) & RMASK) == 0 -> WAKE_HEAD()
  :: else -> skip
  fi
}

/* rwlock.ts #subReaderBias(): "const old = Atomics.sub(this.#v, this.#cnts, QR_BIAS); if (old < 0) this.#readUnlockSlow(old);" */
inline SUB_READER_BIAS() {
  d_step { old = cnts; cnts = cnts - BIAS }
  if
  :: (old & PARKED) != 0 -> READ_UNLOCK_SLOW()
  :: else -> skip
  fi
}

/* ------------------------------------------------------------------------------------------ */
/* wait_queue.ts                                                                              */
/* ------------------------------------------------------------------------------------------ */

/* wait_queue.ts takeTicket(kind, deadline): sets t, or gaveUp when the queue stayed full. */
inline TAKE_TICKET(kind) {
  gaveUp = false;
  do
  :: n = NEXT;    /* "const n = Atomics.load(v, this.#next);" */
     s = SERVING; /* "const s = Atomics.load(v, this.#serving);" */
     if
     :: DIFF(n, s) < QSLOTS ->
        /* "Atomics.compareExchange(v, this.#next, n, (n + 1) | 0) === n" */
        CAS(NEXT, n, (n + 1) & 255, res);
        if
        :: res ->
           /* "Atomics.store(v, this.#state + (n & QUEUE_MASK), gen(n) | kind);" */
           STATE[n & QMASK] = GEN(n) | kind;
           t = n;
           break
        :: else -> skip /* "continue" */
        fi
     :: else ->
        /* A full queue: "if (now >= deadline) return undefined;" else a timed poll of SERVING
         * that nobody notifies (a plain retry here). Unreachable with NTHREADS * OPS < QSLOTS. */
        CHECK_DEADLINE();
        if
        :: deadlinePassed -> gaveUp = true; break
        :: else -> skip
        fi
     fi
  od
}

/* wait_queue.ts #wakeTicket(u): "Atomics.add(this.#v, w, 1); Atomics.notify(this.#v, w);"
 * One step here: a sleeper can only join the WAKE word between the two with the new value, and
 * then the notify merely wakes it early (its loop re-checks SERVING); merging drops only that
 * spurious wake-up. */
inline WAKE_TICKET(u) {
  d_step { WAKE[u & QMASK] = WAKE[u & QMASK] + 1; wakeSleepers[u & QMASK] = 0 }
}

/* wait_queue.ts #advance(ticket, to): move SERVING from t to `to`, skipping ABANDONED tickets. */
inline ADVANCE(to) {
  nx = to;
  do
  :: SERVING = nx; /* step 1: "Atomics.store(v, this.#serving, next);" */
     /* step 2: "Atomics.compareExchange(v, slot, g | ST_ABANDONED, g | ST_EMPTY) !== (g | ST_ABANDONED)" -> break */
     CAS(STATE[nx & QMASK], GEN(nx) | ST_ABANDONED, GEN(nx) | ST_EMPTY, res);
     if
     :: res -> nx = (nx + 1) & 255
     :: else -> break
     fi
  od;
  /* "if (Atomics.load(v, this.#qparked) !== 0)": wake t+1 .. next+1 */
  if
  :: QPARKED != 0 ->
     u = (t + 1) & 255;
     do
     :: u != ((nx + 2) & 255) -> WAKE_TICKET(u); u = (u + 1) & 255
     :: else -> break
     od
  :: else -> skip
  fi
}

/* wait_queue.ts passTurn(ticket): "this.#advance(ticket, (ticket + 1) | 0);" */
inline PASS_TURN() {
  ADVANCE((t + 1) & 255)
}

/* wait_queue.ts #leave(ticket, kind): sets turn to TURN_TIMEOUT or TURN_GRANTED. */
inline LEAVE(kind) {
  /* step 1: "Atomics.compareExchange(v, slot, g | kind, g | ST_ABANDONED) !== (g | kind)" -> granted */
  CAS(STATE[t & QMASK], GEN(t) | kind, GEN(t) | ST_ABANDONED, res);
  if
  :: !res -> turn = TURN_GRANTED
  :: else ->
#ifndef BROKEN_LEAVE_NO_RECHECK
     /* step 2-3: "if (Atomics.load(v, this.#serving) === ticket)" then
      * "if (Atomics.compareExchange(v, slot, g | ST_ABANDONED, g | kind) === (g | ST_ABANDONED)) this.passTurn(ticket);" */
     if
     :: SERVING == t ->
        CAS(STATE[t & QMASK], GEN(t) | ST_ABANDONED, GEN(t) | kind, res);
        if
        :: res -> PASS_TURN()
        :: else -> skip
        fi
     :: else -> skip
     fi;
#endif
     turn = TURN_TIMEOUT
  fi
}

/* wait_queue.ts waitTurn(ticket, kind, deadline): sets turn. */
inline WAIT_TURN(kind) {
  spins = 0;
  do
  :: s = SERVING; /* "const s = Atomics.load(v, this.#serving); const ahead = (ticket - s) | 0;" */
     if
     :: t == s -> turn = TURN_HEAD; break          /* "if (ahead === 0) return TURN_HEAD;" */
     :: NEG(DIFF(t, s)) -> turn = TURN_GRANTED; break /* "if (ahead < 0) return TURN_GRANTED;" */
     :: else ->
        if
        :: DIFF(t, s) == 1 && spins < SPIN_LIMIT -> spins++ /* "if (ahead === 1 && spins < this.#spinLimit)" */
        :: else ->
           CHECK_DEADLINE();
           if
           :: deadlinePassed -> LEAVE(kind); break /* "if (now >= deadline) return this.#leave(ticket, kind);" */
           :: else ->
              seq = WAKE[t & QMASK];          /* "const seq = Atomics.load(v, wake);" */
              d_step { QPARKED++ }            /* "Atomics.add(v, this.#qparked, 1);" */
              d = DIFF(t, SERVING);           /* "((ticket - Atomics.load(v, this.#serving)) | 0) > 0" */
              if
              :: d != 0 && !NEG(d) -> FUTEX_WAIT(WAKE[t & QMASK], wakeSleepers[t & QMASK], seq)
              :: else -> skip
              fi;
              d_step { QPARKED-- }            /* "Atomics.sub(v, this.#qparked, 1);" */
              spins = 0
           fi
        fi
     fi
  od
}

/* wait_queue.ts grantReadersAndPassTurn(ticket): batch-grant the readers queued right behind t. */
inline GRANT_READERS_AND_PASS_TURN() {
  nxt = NEXT;          /* "const next = Atomics.load(v, this.#next);" */
  u = (t + 1) & 255;
  do
  :: u != nxt ->
     st = STATE[u & QMASK]; /* "const st = Atomics.load(v, slot);" */
     granted = false;
     if
     :: st == (GEN(u) | ST_READER) ->
        d_step { cnts = cnts + BIAS } /* "Atomics.add(v, this.#cnts, QR_BIAS);" (hold first) */
        /* "Atomics.compareExchange(v, slot, g | ST_READER, g | ST_GRANTED) === (g | ST_READER)" */
        CAS(STATE[u & QMASK], GEN(u) | ST_READER, GEN(u) | ST_GRANTED, granted);
        if
        :: granted -> u = (u + 1) & 255 /* "granted++; u = (u + 1) | 0; continue;" */
        :: else -> d_step { cnts = cnts - BIAS } /* "Atomics.sub(v, this.#cnts, QR_BIAS);" (it timed out) */
        fi
     :: else -> skip
     fi;
     if
     :: granted -> skip
     :: else ->
        /* "if (Atomics.compareExchange(v, slot, g | ST_ABANDONED, g | ST_EMPTY) !== (g | ST_ABANDONED)) break;" */
        CAS(STATE[u & QMASK], GEN(u) | ST_ABANDONED, GEN(u) | ST_EMPTY, res);
        if
        :: res -> u = (u + 1) & 255
        :: else -> break
        fi
     fi
  :: else -> break
  od;
  ADVANCE(u) /* "this.#advance(ticket, u);" */
}

/* ------------------------------------------------------------------------------------------ */
/* rwlock.ts                                                                                  */
/* ------------------------------------------------------------------------------------------ */

/* rwlock.ts #headWait(kind, deadline): sets hw (true = condition held; a writer also took CNTS). */
inline HEAD_WAIT(kind) {
  spins = 0;
  parkedByUs = false;
  do
  :: c = cnts; /* "const c = Atomics.load(v, i);" */
     if
     :: kind == HEAD_READER && (c & LOCKED) == 0 ->
        /* "if (parkedByUs) Atomics.and(v, i, ~Q_PARKED); return true;" */
        if
        :: parkedByUs -> d_step { cnts = cnts & NOT_PARKED }
        :: else -> skip
        fi;
        hw = true;
        break
#ifndef BROKEN_WRITER_IGNORES_READERS
     :: kind == HEAD_WRITER && (c & NOT_PARKED) == WAITING ->
#else
     :: kind == HEAD_WRITER && (c & LOCKED) == 0 ->
#endif
        /* "if (Atomics.compareExchange(v, i, c, QW_LOCKED) === c) return true; continue;" */
#ifndef BROKEN_WRITER_IGNORES_READERS
        CAS(cnts, c, LOCKED, res);
#else
        CAS(cnts, c, (c & RMASK) | LOCKED, res); /* broken: takes the lock with readers inside */
#endif
        if
        :: res -> hw = true; break
        :: else -> skip
        fi
     :: else ->
        if
        :: spins < SPIN_LIMIT -> spins++
        :: else ->
           CHECK_DEADLINE();
           if
           :: deadlinePassed ->
              /* "if (parkedByUs) Atomics.and(v, i, ~Q_PARKED); return false;" */
              if
              :: parkedByUs -> d_step { cnts = cnts & NOT_PARKED }
              :: else -> skip
              fi;
              hw = false;
              break
           :: else ->
              d_step { old = cnts; cnts = cnts | PARKED } /* "const old = Atomics.or(v, i, Q_PARKED);" */
              parkedByUs = true;
              /* "const ready = kind === HEAD_READER ? (old & QW_LOCKED) === 0 : (old & ~Q_PARKED) === QW_WAITING;" */
              if
              :: (kind == HEAD_READER && (old & LOCKED) == 0) || (kind == HEAD_WRITER && (old & NOT_PARKED) == WAITING) -> skip
              :: else -> FUTEX_WAIT(cnts, cntsSleepers, old | PARKED) /* "Atomics.wait(v, i, old | Q_PARKED, ...)" */
              fi;
              spins = 0
           fi
        fi
     fi
  od
}

/* rwlock.ts readLock(timeoutMs) (fast path + #readLockSlow + #readLockQueued): sets ok. */
inline READ_LOCK() {
  d_step { old = cnts; cnts = cnts + BIAS } /* "const c = Atomics.add(this.#v, this.#cnts, QR_BIAS);" */
  if
  :: (old & WMASK) == 0 -> ok = true      /* "if ((c & QW_WMASK) === 0) ... return true;" */
  :: else ->
     SUB_READER_BIAS();                   /* #readLockSlow step 1: "this.#subReaderBias();" */
     TAKE_TICKET(ST_READER);              /* step 2: "q.takeTicket(ST_READER, deadline)" */
     if
     :: gaveUp -> ok = false
     :: else ->
        WAIT_TURN(ST_READER);             /* "q.waitTurn(ticket, ST_READER, deadline)" */
        if
        :: turn == TURN_GRANTED -> ok = true
        :: turn == TURN_TIMEOUT -> ok = false
        :: turn == TURN_HEAD ->
           d_step { c = cnts; cnts = cnts + BIAS } /* step 3: "const c = Atomics.add(this.#v, this.#cnts, QR_BIAS);" */
           hw = true;
           if
           :: (c & LOCKED) != 0 -> HEAD_WAIT(HEAD_READER) /* "(c & QW_LOCKED) !== 0 && !this.#headWait(HEAD_READER, deadline)" */
           :: else -> skip
           fi;
           if
           :: !hw -> SUB_READER_BIAS(); PASS_TURN(); ok = false /* "this.#subReaderBias(); q.passTurn(ticket); return false;" */
           :: else -> GRANT_READERS_AND_PASS_TURN(); ok = true  /* step 4: "q.grantReadersAndPassTurn(ticket);" */
           fi
        fi
     fi
  fi
}

/* rwlock.ts readUnlock(): "const old = Atomics.sub(this.#v, this.#cnts, QR_BIAS); if (old < 0 || (old & QR_MASK) === 0) this.#readUnlockSlow(old);" */
inline READ_UNLOCK() {
#ifdef BROKEN_PARKED_LATE
  c = cnts; /* broken: PARKED tested in a separate load before the release */
  d_step { nReaders--; old = cnts; cnts = cnts - BIAS }
  if
  :: (c & PARKED) != 0 -> old = old | PARKED; READ_UNLOCK_SLOW()
  :: else -> assert((old & RMASK) != 0)
  fi
#else
  d_step { nReaders--; old = cnts; cnts = cnts - BIAS } /* the critical section ends with the release */
  if
  :: (old & PARKED) != 0 || (old & RMASK) == 0 -> READ_UNLOCK_SLOW()
  :: else -> skip
  fi
#endif
}

/* rwlock.ts writeLock(timeoutMs) (fast path + #writeLockSlow + #writeLockQueued): sets ok. */
inline WRITE_LOCK() {
  CAS(cnts, 0, LOCKED, res); /* "Atomics.compareExchange(this.#v, this.#cnts, 0, QW_LOCKED) === 0" */
  if
  :: res -> ok = true
  :: else ->
     TAKE_TICKET(ST_WRITER);  /* step 1: "q.takeTicket(ST_WRITER, deadline)" */
     if
     :: gaveUp -> ok = false
     :: else ->
        WAIT_TURN(ST_WRITER); /* "q.waitTurn(ticket, ST_WRITER, deadline)" */
        if
        :: turn == TURN_GRANTED -> assert(false) /* "a writer was granted a read hold" */
        :: turn == TURN_TIMEOUT -> ok = false
        :: turn == TURN_HEAD ->
           c = cnts; /* step 2: "const c = Atomics.load(v, this.#cnts);" */
           res = false;
           if
           :: (c & NOT_PARKED) == 0 -> CAS(cnts, c, LOCKED, res) /* "Atomics.compareExchange(v, this.#cnts, c, QW_LOCKED) !== c" */
           :: else -> skip
           fi;
           hw = true;
           if
           :: !res ->
              d_step { cnts = cnts | WAITING } /* step 3: "Atomics.or(v, this.#cnts, QW_WAITING);" */
              HEAD_WAIT(HEAD_WRITER);           /* step 4: "this.#headWait(HEAD_WRITER, deadline)" */
              if
              :: !hw -> d_step { cnts = cnts & (255 - WAITING - PARKED) } /* "Atomics.and(v, this.#cnts, ~(QW_WAITING | Q_PARKED));" */
              :: else -> skip
              fi
           :: else -> skip
           fi;
           PASS_TURN(); /* "q.passTurn(ticket);" (step 5, or after a timeout) */
           ok = hw
        fi
     fi
  fi
}

/* rwlock.ts writeUnlock(): "const old = Atomics.sub(this.#v, this.#cnts, QW_LOCKED); if (old < 0 || ...) this.#writeUnlockSlow(old);" */
inline WRITE_UNLOCK() {
#ifdef BROKEN_PARKED_LATE
  c = cnts; /* broken: PARKED tested in a separate load before the release */
  d_step { nWriters--; old = cnts; cnts = cnts - LOCKED } /* the critical section ends with the release */
  assert((old & LOCKED) == LOCKED);
  if
  :: (c & PARKED) != 0 -> WAKE_HEAD()
  :: else -> skip
  fi
#else
  d_step { nWriters--; old = cnts; cnts = cnts - LOCKED } /* the critical section ends with the release */
  assert((old & LOCKED) == LOCKED); /* #writeUnlockSlow: "(old & QW_LOCKED) !== QW_LOCKED" never happens here */
  if
  :: (old & PARKED) != 0 -> WAKE_HEAD() /* #writeUnlockSlow: "this.#wakeHead();" */
  :: else -> skip
  fi
#endif
}

/* Forget the slow path's temporaries once an operation returns: dead JS locals hold nothing,
 * and stale values would only split otherwise equal states. */
inline FORGET() {
  d_step {
    c = 0; old = 0; n = 0; s = 0; t = 0; u = 0; nx = 0; nxt = 0; st = 0; seq = 0; d = 0; turn = 0;
    spins = 0; res = false; slept = false; gaveUp = false; hw = false; parkedByUs = false;
    granted = false; deadlinePassed = false
  }
}


proctype thread(byte me) {
  bool timed, expired, deadlinePassed, ok, res, slept, gaveUp, hw, parkedByUs, granted;
  byte c, old, n, s, t, u, nx, nxt, st, seq, d, turn, spins, round;
  round = 0;
  do
  :: round < OPS ->
     round++;
     d_step { expired = false; ok = false };
     /* readLock() / writeLock() with no timeout, or with a timeout that may run out. */
     if
     :: timed = false
     :: (TIMED_THREADS & BIT) != 0 -> timed = true
     fi;
     if
     :: (READERS & BIT) != 0 -> READ_LOCK();
        FORGET();
        if
        :: ok ->
           d_step { nReaders++; assert(nWriters == 0) } /* the read-side critical section */
           READ_UNLOCK();
           FORGET()
        :: else -> assert(timed) /* "false only if timeoutMs was given and ran out" */
        fi
     :: (WRITERS & BIT) != 0 -> WRITE_LOCK();
        FORGET();
        if
        :: ok ->
           d_step { nWriters++; assert(nWriters == 1 && nReaders == 0) }
           WRITE_UNLOCK();
           FORGET()
        :: else -> assert(timed)
        fi
     fi
  :: else -> break
  od;
  finished++
}

init {
  byte i;
  atomic {
    i = 0;
    do
    :: i < NTHREADS -> run thread(i); i++
    :: else -> break
    od
  }
  /* Quiescence: every thread done. A timed-out acquire "leaves nothing behind: no reader bias,
   * no waiting bit and no live ticket" (packages/atomics-lock/README.md); no one is left asleep. */
  (finished == NTHREADS);
  assert((cnts & NOT_PARKED) == 0);
  assert(NEXT == SERVING);
  assert(cntsSleepers == 0)
}

#ifdef LIVENESS
/* No lost wake-up: under weak fairness every thread finishes all its rounds (every untimed
 * acquire returns true, asserted above; every timed one returns). */
ltl allFinish { <> (finished == NTHREADS) }
#endif
