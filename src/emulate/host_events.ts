/**
 * `--host-events PROFILE`: how often the host-events thread (workers/host_events.worker.ts) makes
 * the host's mm act on the guest's page tables. Each event is drawn from a Poisson process of its
 * own rate, seeded from --seed. The profile is tied to --pressure by default (a host short of
 * memory reclaims, compacts and migrates more): none -> none, moderate -> light, heavy -> heavy.
 *
 * | profile | invalidations (rate, range, mm work between start and end) | aging (rate, range) |
 * |---|---|---|
 * | none  | 0 | 0 |
 * | light | 20/s, one backing page, 50 us | 20/s, 2M |
 * | heavy | 500/s, one backing page, 200 us | 200/s, 2M |
 *
 * Why these values (order-of-magnitude choices, like the pressure profiles; no published rate
 * exists): an invalidation covers one backing page because the mm events that fire it (NUMA
 * balancing, KSM merges, THP collapse and split, migration by compaction, reclaim) each act on one
 * folio; the work between start and end is the page copy or unmap, tens of microseconds for a 2M
 * copy, more under pressure. 20/s is a host with NUMA balancing and KSM scanning at their default
 * pace; 500/s a host compacting and swapping. Aging (MGLRU and the LRU scan) calls clear_young one
 * PMD (2M) of page table at a time; light is a slow background scan, heavy a host reclaiming
 * hard. NX huge page recovery runs once per NX_RECOVERY_PERIOD_MS (the kernel's 60 s), in every
 * profile with events; host_events.worker.ts says how it joins the event table.
 *
 * Keys (`--host-events heavy,invalidate=1000` or `--host-events invalidate=50,age=0`):
 *   invalidate=PER_S, invalidate-pages=N (backing pages per range), invalidate-us=US,
 *   age=PER_S, age-pages=N (4K pages per range),
 *   and the lock behaviours, overriding --kernel: retry=before-lock|after-lock,
 *   aging-lock=write|rcu.
 */
import { invalidOption } from '../errors.js';
import type { HostLockMode, KernelBehaviour, NotifierRetryPoint } from '../kernel_version.js';

/**
 * The NX recovery worker's period: kvm.nx_huge_pages_recovery_period_ms = 0 means
 * 3,600,000 / nx_huge_pages_recovery_ratio (60) = 60 s, the kernel default.
 */
export const NX_RECOVERY_PERIOD_MS = 60_000;

export interface HostEventsProfile {
  readonly name: string;
  /** MMU-notifier invalidations per second (invalidate_range_start ... _end pairs). */
  readonly invalidatePerSec: number;
  /** Backing pages per invalidated range. */
  readonly invalidatePages: number;
  /** The mm's work between range_start and range_end, microseconds. */
  readonly invalidateUs: number;
  /** clear_young calls per second. */
  readonly agePerSec: number;
  /** 4K pages per aged range. */
  readonly agePages: number;
  /** Overrides of the kernel's defaults (undefined: the --kernel release decides). */
  readonly retry?: NotifierRetryPoint;
  readonly agingLock?: HostLockMode;
}

export const HOST_EVENT_PROFILES: Readonly<Record<'none' | 'light' | 'heavy', HostEventsProfile>> = Object.freeze({
  none: { name: 'none', invalidatePerSec: 0, invalidatePages: 1, invalidateUs: 0, agePerSec: 0, agePages: 512 },
  light: { name: 'light', invalidatePerSec: 20, invalidatePages: 1, invalidateUs: 50, agePerSec: 20, agePages: 512 },
  heavy: { name: 'heavy', invalidatePerSec: 500, invalidatePages: 1, invalidateUs: 200, agePerSec: 200, agePages: 512 },
});

/** The profile --pressure implies when --host-events is not given. */
export function hostEventsForPressure(pressure: string): string {
  const first = pressure.split(',')[0]!.trim();
  return first === 'heavy' ? 'heavy' : first === 'moderate' ? 'light' : 'none';
}

const NUM_KEYS = {
  invalidate: ['invalidatePerSec', 100_000],
  'invalidate-pages': ['invalidatePages', 512],
  'invalidate-us': ['invalidateUs', 1_000_000],
  age: ['agePerSec', 100_000],
  'age-pages': ['agePages', 1 << 20],
} as const;

export function parseHostEvents(label: string, raw: string): HostEventsProfile {
  const parts = raw
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  if (parts.length === 0) throw invalidOption(label, 'expected none, light, heavy or key=value,...');
  let out: Record<string, unknown> = { ...HOST_EVENT_PROFILES.none };
  let start = 0;
  if (!parts[0]!.includes('=')) {
    const n = parts[0]!;
    if (n !== 'none' && n !== 'light' && n !== 'heavy') throw invalidOption(label, `unknown profile ${JSON.stringify(n)}; expected none, light or heavy`);
    out = { ...HOST_EVENT_PROFILES[n] };
    start = 1;
  }
  for (const p of parts.slice(start)) {
    const eq = p.indexOf('=');
    if (eq < 0) throw invalidOption(label, `'${p}' is not key=value (a profile name may only come first)`);
    const key = p.slice(0, eq).trim();
    const v = p.slice(eq + 1).trim();
    if (key === 'retry') {
      if (v !== 'before-lock' && v !== 'after-lock') throw invalidOption(label, `retry must be before-lock or after-lock, got ${JSON.stringify(v)}`);
      out['retry'] = v;
    } else if (key === 'aging-lock') {
      if (v !== 'write' && v !== 'rcu') throw invalidOption(label, `aging-lock must be write or rcu, got ${JSON.stringify(v)}`);
      out['agingLock'] = v;
    } else if (Object.hasOwn(NUM_KEYS, key)) {
      const [field, max] = NUM_KEYS[key as keyof typeof NUM_KEYS];
      const n = Number(v);
      if (v === '' || !Number.isFinite(n) || n < 0 || n > max) throw invalidOption(label, `${key}=${v} must be a number in [0, ${max}]`);
      if ((field === 'invalidatePages' || field === 'agePages') && (!Number.isInteger(n) || n < 1)) {
        throw invalidOption(label, `${key} must be a positive integer`);
      }
      out[field] = n;
    } else {
      throw invalidOption(label, `unknown key '${key}'; known: ${[...Object.keys(NUM_KEYS), 'retry', 'aging-lock'].join(', ')}`);
    }
    out['name'] = start === 1 ? `${parts[0]}+custom` : 'custom';
  }
  return Object.freeze(out) as unknown as HostEventsProfile;
}

/** The profile does something (the run plan adds the host-events actor only then). */
export function hostEventsActive(p: HostEventsProfile): boolean {
  return p.invalidatePerSec > 0 || p.agePerSec > 0;
}

/** The lock behaviours the actor and the faults use: the profile's overrides, else the kernel's. */
export function hostEventLocks(p: HostEventsProfile, k: KernelBehaviour): { retry: NotifierRetryPoint; agingLock: HostLockMode } {
  return { retry: p.retry ?? k.notifierRetry, agingLock: p.agingLock ?? k.agingLock };
}
