/**
 * `--kernel VERSION`: which Linux release the run models. Every behaviour that changed between
 * releases is one row of KERNEL_CHANGES (the release it arrived in, the behaviour before and
 * after, the commit or series), and `kernelBehaviour(version)` reads the table; nothing else in
 * the emulator compares version numbers. Options that name a behaviour explicitly (`--split-alloc`,
 * `--eager-split`, the `--host-events` lock keys) override the version's default.
 *
 * What is impossible and what is merely anachronistic (options.ts applies it; an impossible
 * combination is a user error, exit 2):
 *   - impossible: the code does not exist in that release in any form, so the run would model
 *     nothing real: eager page splitting before 5.18 (`--eager-split on`, or any eager design),
 *     and split-on-fault (`lazy`) before 6.2;
 *   - anachronistic, allowed and printed in the banner: a design from another release of the same
 *     mechanism (drop-always on 5.18, nowait-retry on 6.12, lazy-zap on 6.2+: a backport or a
 *     revert is one patch away), the designs that never shipped on x86 (cache, chunked-cache,
 *     blocking-under-lock), and lock modes named explicitly with `--host-events`.
 *
 * The default is 6.12: the first longterm release with 6.11's drop-always, i.e. what the emulator
 * did before this option existed (eager split with drop-always, split on fault when eager
 * splitting is off, the notifier retry before the lock, aging and NX recovery under the write lock).
 */

/** A release as [major, minor]. */
export type KernelVersion = readonly [number, number];

export const DEFAULT_KERNEL: KernelVersion = [6, 12];

/** Where a fault re-checks an MMU-notifier invalidation (mmu_notifier.ts). */
export type NotifierRetryPoint = 'after-lock' | 'before-lock';
/** How a host thread holds mmu_lock for a host event (write, read, or only RCU). */
export type HostLockMode = 'write' | 'read' | 'rcu';

/** Every version-dependent behaviour, resolved for one release. */
export interface KernelBehaviour {
  /** Eager page splitting exists (kvm.eager_page_split, 5.18). */
  readonly eagerSplitExists: boolean;
  /** The allocation design eager splitting uses (null before 5.18). */
  readonly splitAlloc: 'nowait-retry' | 'drop-always' | null;
  /** A vCPU write to a huge page in a dirty-logged slot: split it (6.2) or zap it (before). */
  readonly lazyPath: 'lazy' | 'lazy-zap';
  /** mmu_invalidate_retry_gfn_unsafe before taking mmu_lock (6.8), or only the check under it. */
  readonly notifierRetry: NotifierRetryPoint;
  /** kvm_tdp_mmu_age_gfn_range: write lock, no yielding (through 6.14), lockless under RCU (6.15). */
  readonly agingLock: HostLockMode;
  /** The NX huge page recovery worker: write lock (through 6.17), read lock (6.18). */
  readonly nxRecoveryLock: HostLockMode;
  /** NX recovery leaves dirty-logged memslots alone (6.2). */
  readonly nxRecoverySkipsDirtyLogged: boolean;
}

interface KernelChange<K extends keyof KernelBehaviour> {
  readonly key: K;
  readonly since: KernelVersion;
  readonly before: KernelBehaviour[K];
  readonly after: KernelBehaviour[K];
  /** The change, for the banner and docs. */
  readonly what: string;
}

type AnyChange = { [K in keyof KernelBehaviour]: KernelChange<K> }[keyof KernelBehaviour];

/**
 * The one table. Rows with the same key apply in order of `since` (splitAlloc changes twice).
 * Sources: kvm-eager-split.md §6 and kvm-faults-and-dirty-tracking.md §2-§4 (reference notes).
 */
export const KERNEL_CHANGES: readonly AnyChange[] = Object.freeze([
  { key: 'eagerSplitExists', since: [5, 18], before: false, after: true, what: 'eager page splitting (kvm.eager_page_split)' },
  {
    key: 'splitAlloc',
    since: [5, 18],
    before: null,
    after: 'nowait-retry',
    what: 'split allocations with GFP_NOWAIT under mmu_lock, retry blocking on failure',
  },
  { key: 'splitAlloc', since: [6, 11], before: 'nowait-retry', after: 'drop-always', what: 'drop mmu_lock for every split allocation' },
  { key: 'lazyPath', since: [6, 2], before: 'lazy-zap', after: 'lazy', what: 'split huge pages on write fault instead of zapping them (c4b33d28ea51)' },
  {
    key: 'nxRecoverySkipsDirtyLogged',
    since: [6, 2],
    before: false,
    after: true,
    what: 'NX recovery does not zap dirty-tracked NX huge pages (eb298605705a)',
  },
  {
    key: 'notifierRetry',
    since: [6, 8],
    before: 'after-lock',
    after: 'before-lock',
    what: 'faults in an invalidated range retry before taking mmu_lock (d02c357e5bfa)',
  },
  { key: 'agingLock', since: [6, 15], before: 'write', after: 'rcu', what: 'age TDP MMU SPTEs without holding mmu_lock (b146a9b34aed)' },
  { key: 'nxRecoveryLock', since: [6, 18], before: 'write', after: 'read', what: 'TDP MMU NX recovery under the read lock (a57750909580)' },
] satisfies AnyChange[]);

/** Oldest and newest releases the table describes meaningfully (the TDP MMU is on by default from 5.15). */
export const KERNEL_MIN: KernelVersion = [5, 10];
export const KERNEL_MAX: KernelVersion = [6, 99];

export function compareVersions(a: KernelVersion, b: KernelVersion): number {
  return a[0] !== b[0] ? a[0] - b[0] : a[1] - b[1];
}

export function formatKernel(v: KernelVersion): string {
  return `${v[0]}.${v[1]}`;
}

/** "6.12", "5.18" (a third component, "6.1.55", is accepted and ignored); null if malformed. */
export function parseKernelVersion(raw: string): KernelVersion | null {
  const m = /^(\d+)\.(\d+)(?:\.\d+)?$/.exec(raw.trim());
  if (m === null) return null;
  return [Number(m[1]), Number(m[2])];
}

export function kernelBehaviour(v: KernelVersion): KernelBehaviour {
  const out: Record<string, unknown> = {};
  const sorted = [...KERNEL_CHANGES].sort((a, b) => compareVersions(a.since, b.since));
  for (const c of sorted) {
    if (!(c.key in out)) out[c.key] = c.before;
    if (compareVersions(v, c.since) >= 0) out[c.key] = c.after;
  }
  return Object.freeze(out) as unknown as KernelBehaviour;
}
