/**
 * SPTE encoding: one shadow page-table entry is one 64-bit slot of a `BigInt64Array` over the
 * page-table pool's SharedArrayBuffer, 512 per table page (KVM `spte.h` / `spte.c`, EPT flavour).
 *
 * Bit map (the same positions KVM uses with EPT, see kvm-eager-split.md §1.13):
 *
 *   63 ........ 59 | 58 | 57 | 56..52 | 51 .................. 12 | 11 | 10 | 9 | 8 | 7 | 6..3 | 2 | 1 | 0
 *     (unused)     | MW | HW | unused |  PFN (or child table)    | MP |    | D | A | L |      | X | W | R
 *
 *   R/W/X  hardware permissions (EPT bits 0-2); X is withheld from huge leaves with NX huge pages
 *   L      large page: a leaf above 4K (bit 7, PT_PAGE_SIZE_MASK)
 *   A/D    accessed / dirty (EPT bits 8/9)
 *   MP     MMU-present: KVM's software "this SPTE is shadow-present" bit (bit 11)
 *   PFN    host page frame (leaf) or, for a non-leaf SPTE, the child table's index in the pool
 *   HW/MW  host-writable / MMU-writable (EPT bits 57/58): "may this SPTE be made writable?"
 *
 * Three distinct non-present values:
 *   SHADOW_NONPRESENT_VALUE = 0      what an empty entry holds
 *   FROZEN_SPTE             = 0x498  an entry being torn down; walkers must retry (KVM REMOVED/FROZEN)
 *   POISON_SPTE                      what freed tables are filled with; a walker that ever reads it
 *                                    read a table after its grace period began (a use-after-free)
 *
 * Invariants (checked at load time below, and mirrored in native-free-tests/spte.test.ts):
 *   - no two field masks overlap;
 *   - none of the three non-present values has MMU-present set, and they are pairwise distinct;
 *   - FROZEN_SPTE and POISON_SPTE have no R/W/X and no A/D bits (as KVM requires of FROZEN_SPTE).
 * Remember to update this comment when a bit moves.
 *
 * Dirty tracking (the VM's dirtyTrack, dirty_log.ts): with WRITE PROTECTION (KVM without PML)
 * enabling dirty logging clears W (keeping MMU-writable), and the first write takes the lockless
 * fast fault that sets W and D again and marks the page in the slot's dirty bitmap; D is set with
 * W and never relied on. With PML (pml.ts) 4K leaves keep W and lose D: the hardware walk sets D
 * on the next write and logs the gfn, so D is what the dirty log relies on.
 *
 * Performance note: BigInt arithmetic allocates in V8 unless TurboFan can keep it in a register;
 * hot paths use the precomputed constants and offset tables here rather than building BigInts.
 */

// ---------------------------------------------------------------------------------------------
// Geometry
// ---------------------------------------------------------------------------------------------

/** SPTEs per table page: a 4 KiB page of 8-byte entries (SPTE_ENT_PER_PAGE). */
export const PT_ENTRIES = 512;
/** log2(PT_ENTRIES): each level translates 9 bits of the gfn (SPTE_LEVEL_BITS). */
export const PT_LEVEL_BITS = 9;

export const PG_LEVEL_4K = 1;
export const PG_LEVEL_2M = 2;
export const PG_LEVEL_1G = 3;
/** Deepest root we model: 5-level paging (LA57), PT64_ROOT_MAX_LEVEL. */
export const PT64_ROOT_MAX_LEVEL = 5;
/** Largest level at which a leaf (huge page) may exist: 1G. */
export const MAX_HUGE_LEVEL = PG_LEVEL_1G;

/** 4K pages covered by one SPTE at `level`: 512^(level-1) (KVM_PAGES_PER_HPAGE). Exact as a number up to level 5 (2^36). */
export function pagesPerHpage(level: number): number {
  return 2 ** (PT_LEVEL_BITS * (level - 1));
}

/** Index of `gfn`'s SPTE in the table at `level` (SPTE_INDEX). */
export function spteIndex(gfn: number, level: number): number {
  // gfn can exceed 2^32 (5-level: up to 2^45), so divide rather than shift; `& 511` is exact
  // for any integer below 2^53 (ToInt32 keeps the low 32 bits, a multiple of 512).
  return Math.floor(gfn / pagesPerHpage(level)) & (PT_ENTRIES - 1);
}

/** `gfn` rounded down to the start of its `level`-sized region. */
export function alignDownGfn(gfn: number, level: number): number {
  const n = pagesPerHpage(level);
  return gfn - (gfn % n);
}

/** Exclusive upper bound of gfns a root of `rootLevel` levels can map. */
export function maxGfnForRoot(rootLevel: number): number {
  return pagesPerHpage(rootLevel + 1);
}

// ---------------------------------------------------------------------------------------------
// Bits: each mask with why it exists
// ---------------------------------------------------------------------------------------------

/** EPT read permission. Set on every present SPTE we build (we model no execute-only pages). */
export const SPTE_R_MASK = 1n << 0n;
/** EPT write permission (PT_WRITABLE_MASK). Cleared by write protection for dirty logging. */
export const SPTE_W_MASK = 1n << 1n;
/**
 * EPT execute permission. Set on every non-leaf SPTE and every 4K leaf; cleared on huge leaves
 * when the VM runs with NX huge pages (makeLeafSpte's `nxHuge`: the iTLB multihit mitigation,
 * kvm-faults-and-dirty-tracking.md §3), so an instruction fetch from a huge page faults.
 */
export const SPTE_X_MASK = 1n << 2n;
/** Large page (PT_PAGE_SIZE_MASK): a leaf at 2M or 1G. Never set at 4K, where every entry is a leaf. */
export const SPTE_LARGE_MASK = 1n << 7n;
/** Accessed (VMX_EPT_ACCESS_BIT). Set at creation (we do not model access tracking / aging). */
export const SPTE_A_MASK = 1n << 8n;
/** Dirty (VMX_EPT_DIRTY_BIT). Set with W when a write fault makes the SPTE writable, or by the hardware walk on a write (PML). */
export const SPTE_D_MASK = 1n << 9n;
/** MMU-present (SPTE_MMU_PRESENT_MASK): KVM's software present bit; isShadowPresent tests only this. */
export const SPTE_MMU_PRESENT_MASK = 1n << 11n;
/** PFN field, bits 12..51 (PT64_BASE_ADDR_MASK): host frame of a leaf, child table index of a non-leaf. */
const SPTE_PFN_SHIFT = 12n;
const SPTE_PFN_BITS = 40n;
export const SPTE_PFN_MASK = ((1n << SPTE_PFN_BITS) - 1n) << SPTE_PFN_SHIFT;
/** Host-writable (EPT bit 57): the host mapping allows writes. Always set (we model no read-only memory). */
export const SPTE_HOST_WRITABLE_MASK = 1n << 57n;
/**
 * MMU-writable (EPT bit 58): KVM itself allows W. Write protection for dirty logging clears W but
 * keeps this bit, which is exactly what makes the lockless fast fault legal.
 */
export const SPTE_MMU_WRITABLE_MASK = 1n << 58n;

/** Permission bits set on every present SPTE we build. */
const SPTE_RX = SPTE_R_MASK | SPTE_X_MASK;

// ---------------------------------------------------------------------------------------------
// Special non-present values
// ---------------------------------------------------------------------------------------------

/**
 * The value of an empty SPTE. We choose 0, not KVM's BIT(63): bit 63 only exists in KVM to
 * suppress TDX #VE exceptions, which we do not model, and 0 makes a fresh SharedArrayBuffer
 * (zero-filled by the runtime) an all-empty table for free, and a table fill a `fill(0n)`.
 */
export const SHADOW_NONPRESENT_VALUE = 0n;

/**
 * A frozen SPTE: being zapped or torn down; walkers seeing it must retry (RET_PF_RETRY), never
 * install over it. KVM's current value 0x498 (bits 3, 4, 7, 10): no R/W/X, no A/D (KVM requires
 * "bits 5,6, 8, and 9 must not be set"), not MMU-present, and enough bits set to be recognisable.
 */
export const FROZEN_SPTE = SHADOW_NONPRESENT_VALUE | 0x498n;

/**
 * What a freed table's 512 entries are overwritten with (pt_pool freeAfterGracePeriod). Linux's
 * slab POISON_FREE byte 0x6b repeated, with MMU-present (bit 11), R/W/X and A/D cleared so it is
 * non-present and distinct. A walker that reads it has followed a pointer into a freed table: a
 * use-after-free the RCU grace period exists to prevent; guestAccess counts POISON_READS.
 */
export const POISON_SPTE = 0x6b6b6b6b6b6b6b6bn & ~(SPTE_MMU_PRESENT_MASK | SPTE_RX | SPTE_W_MASK | SPTE_A_MASK | SPTE_D_MASK);

// ---------------------------------------------------------------------------------------------
// Load-time checks (TypeScript has no static_assert)
// ---------------------------------------------------------------------------------------------

function checkEncoding(): void {
  const fields: readonly (readonly [string, bigint])[] = [
    ['R', SPTE_R_MASK],
    ['W', SPTE_W_MASK],
    ['X', SPTE_X_MASK],
    ['LARGE', SPTE_LARGE_MASK],
    ['A', SPTE_A_MASK],
    ['D', SPTE_D_MASK],
    ['MMU_PRESENT', SPTE_MMU_PRESENT_MASK],
    ['PFN', SPTE_PFN_MASK],
    ['HOST_WRITABLE', SPTE_HOST_WRITABLE_MASK],
    ['MMU_WRITABLE', SPTE_MMU_WRITABLE_MASK],
  ];
  for (let i = 0; i < fields.length; i++) {
    for (let j = i + 1; j < fields.length; j++) {
      const [ni, mi] = fields[i]!;
      const [nj, mj] = fields[j]!;
      if ((mi & mj) !== 0n) throw new Error(`spte: masks ${ni} and ${nj} overlap (0x${(mi & mj).toString(16)})`);
    }
  }
  // Every mask must fit in a signed 64-bit slot (BigInt64Array stores two's complement).
  for (const [n, m] of fields) {
    if (m !== BigInt.asUintN(63, m)) throw new Error(`spte: mask ${n} uses bit 63`);
  }
  const specials: readonly (readonly [string, bigint])[] = [
    ['SHADOW_NONPRESENT_VALUE', SHADOW_NONPRESENT_VALUE],
    ['FROZEN_SPTE', FROZEN_SPTE],
    ['POISON_SPTE', POISON_SPTE],
  ];
  for (const [n, v] of specials) {
    if ((v & SPTE_MMU_PRESENT_MASK) !== 0n) throw new Error(`spte: ${n} is MMU-present`);
    if (v !== BigInt.asIntN(64, v)) throw new Error(`spte: ${n} does not fit a BigInt64Array slot`);
  }
  for (const [n, v] of specials.slice(1)) {
    if ((v & (SPTE_RX | SPTE_W_MASK | SPTE_A_MASK | SPTE_D_MASK)) !== 0n) throw new Error(`spte: ${n} has R/W/X or A/D bits`);
  }
  if (SHADOW_NONPRESENT_VALUE === FROZEN_SPTE || SHADOW_NONPRESENT_VALUE === POISON_SPTE || FROZEN_SPTE === POISON_SPTE) {
    throw new Error('spte: SHADOW_NONPRESENT_VALUE, FROZEN_SPTE and POISON_SPTE must be distinct');
  }
}
checkEncoding();

// ---------------------------------------------------------------------------------------------
// Predicates
// ---------------------------------------------------------------------------------------------

/** is_shadow_present_pte: tests only the MMU-present bit (frozen and poison values are not present). */
export function isShadowPresent(spte: bigint): boolean {
  return (spte & SPTE_MMU_PRESENT_MASK) !== 0n;
}

/** is_large_pte: bit 7. Meaningful only on a present SPTE. */
export function isLargeSpte(spte: bigint): boolean {
  return (spte & SPTE_LARGE_MASK) !== 0n;
}

/** is_last_spte: a leaf, i.e. at 4K every entry, above 4K only with the large bit. */
export function isLastSpte(spte: bigint, level: number): boolean {
  return level === PG_LEVEL_4K || (spte & SPTE_LARGE_MASK) !== 0n;
}

/** Present and pointing at a child table (step down through it). */
export function isPresentNonLeaf(spte: bigint, level: number): boolean {
  return level > PG_LEVEL_4K && (spte & (SPTE_MMU_PRESENT_MASK | SPTE_LARGE_MASK)) === SPTE_MMU_PRESENT_MASK;
}

/** A huge leaf: present with the large bit (what the splitter looks for). */
export function isPresentLarge(spte: bigint): boolean {
  return (spte & (SPTE_MMU_PRESENT_MASK | SPTE_LARGE_MASK)) === (SPTE_MMU_PRESENT_MASK | SPTE_LARGE_MASK);
}

export function isFrozen(spte: bigint): boolean {
  return spte === FROZEN_SPTE;
}

export function isPoison(spte: bigint): boolean {
  return spte === POISON_SPTE;
}

/** Executable (X bit): an instruction fetch through this leaf does not fault. */
export function isExecutable(spte: bigint): boolean {
  return (spte & SPTE_X_MASK) !== 0n;
}

/** Hardware-writable right now (W bit). */
export function isWritable(spte: bigint): boolean {
  return (spte & SPTE_W_MASK) !== 0n;
}

/** KVM allows making it writable (MMU-writable bit): the fast-fault precondition. */
export function isMmuWritable(spte: bigint): boolean {
  return (spte & SPTE_MMU_WRITABLE_MASK) !== 0n;
}

/** D bit (is_dirty_spte with A/D enabled). */
export function isDirty(spte: bigint): boolean {
  return (spte & SPTE_D_MASK) !== 0n;
}

/** Lockless fast-fault candidate for a write: present, W clear, MMU-writable set (fast_pf_fix_direct_spte). */
export function isFastWriteFixable(spte: bigint): boolean {
  return (spte & (SPTE_MMU_PRESENT_MASK | SPTE_W_MASK | SPTE_MMU_WRITABLE_MASK)) === (SPTE_MMU_PRESENT_MASK | SPTE_MMU_WRITABLE_MASK);
}

// ---------------------------------------------------------------------------------------------
// Converters
// ---------------------------------------------------------------------------------------------

/**
 * BigInt -> number without `Number(bigint)`: V8 (Node 20) does not lower Number() of a BigInt
 * (~30 ns, it allocates), but it does lower a BigInt64Array store (~0.5 ns). So a value is stored
 * into this private scratch slot and read back as two Int32 halves (little-endian: checked below).
 * Thread-private (not shared), so the two halves always come from the same 64-bit value.
 */
const SCRATCH64 = new BigInt64Array(1);
const SCRATCH32 = new Int32Array(SCRATCH64.buffer);
SCRATCH64[0] = 1n;
if (SCRATCH32[0] !== 1) throw new Error('spte: the scratch-slot conversion assumes a little-endian host');

/** The PFN field (bits 12..51) as a number: low word bits 12..31 plus high word bits 0..19. */
export function spteToPfn(spte: bigint): number {
  SCRATCH64[0] = spte;
  return (SCRATCH32[0]! >>> 12) + (SCRATCH32[1]! & 0xfffff) * 1048576;
}

/** The child table index of a present non-leaf SPTE (its PFN field). */
export function spteToChildTable(spte: bigint): number {
  SCRATCH64[0] = spte;
  return (SCRATCH32[0]! >>> 12) + (SCRATCH32[1]! & 0xfffff) * 1048576;
}

/** The PFN field of `pfn` as a BigInt, built through the scratch slot (no BigInt(number) call). */
function pfnBits(pfn: number): bigint {
  SCRATCH32[0] = (pfn & 0xfffff) << 12;
  SCRATCH32[1] = Math.floor(pfn / 1048576) & 0xfffff;
  return SCRATCH64[0]!;
}

/**
 * The SPTE with `lowBits` (flag bits of the low 32 bits: W, D, A, X, present, large) cleared or
 * set, built through the scratch slot. `spte & ~SPTE_D_MASK` allocates a fresh BigInt in V8
 * (Node 20) on every call, about 50 ns and a share of the GC time of every walk that changes
 * SPTEs (bench/e2e-phases.bench.ts prints the phases it shows in); a store, a 32-bit op and a load are
 * lowered to plain machine code when the caller is optimised. Small enough to be inlined.
 */
export function spteClearLowBits(spte: bigint, lowBits: number): bigint {
  SCRATCH64[0] = spte;
  SCRATCH32[0] = SCRATCH32[0]! & ~lowBits;
  return SCRATCH64[0]!;
}

/** The SPTE with the low-word flag bits `lowBits` set (see spteClearLowBits). */
export function spteSetLowBits(spte: bigint, lowBits: number): bigint {
  SCRATCH64[0] = spte;
  SCRATCH32[0] = SCRATCH32[0]! | lowBits;
  return SCRATCH64[0]!;
}

/** A flag mask of the low 32 bits as a number (for spteClearLowBits / spteSetLowBits); throws for any other bit. */
export function lowFlagBits(mask: bigint): number {
  if (mask <= 0n || mask > 0x7fffffffn) throw new RangeError(`lowFlagBits: ${spteHex(mask)} is not a low-word flag mask`);
  return Number(mask);
}

/** Hex rendering for state dumps. */
export function spteHex(spte: bigint): string {
  return `0x${BigInt.asUintN(64, spte).toString(16)}`;
}

// ---------------------------------------------------------------------------------------------
// Constructors
// ---------------------------------------------------------------------------------------------

/** The constant part of every leaf we build: present, R/X, accessed, host- and MMU-writable. */
const LEAF_BITS = SPTE_MMU_PRESENT_MASK | SPTE_RX | SPTE_A_MASK | SPTE_HOST_WRITABLE_MASK | SPTE_MMU_WRITABLE_MASK;

export interface LeafSpteOptions {
  /** Set W (and D): the fault that installs it was a write. Default false. */
  readonly writable?: boolean;
  /**
   * NX huge pages (kvm.nx_huge_pages=Y): a huge leaf is built without X, as make_spte does when
   * the fault's huge_page_disallowed workaround applies. No effect on 4K leaves. Default false.
   */
  readonly nxHuge?: boolean;
}

/**
 * A leaf at `level` (1 = 4K, 2 = 2M, 3 = 1G) mapping host frame `pfn` (aligned to the level).
 * Always MMU-writable and host-writable: the only write protection we model is dirty logging's,
 * which the fast fault may undo. A writable leaf is also dirty, as KVM sets D with W on a write fault.
 */
export function makeLeafSpte(pfn: number, level: number, opts?: LeafSpteOptions): bigint {
  let spte = LEAF_BITS | pfnBits(pfn);
  if (level > PG_LEVEL_4K) {
    spte |= SPTE_LARGE_MASK;
    if (opts?.nxHuge === true) spte &= ~SPTE_X_MASK;
  }
  if (opts?.writable === true) spte |= SPTE_W_MASK | SPTE_D_MASK;
  return spte;
}

/** The constant part of every non-leaf SPTE (make_nonleaf_spte: present, RWX, accessed). */
const NONLEAF_BITS = SPTE_MMU_PRESENT_MASK | SPTE_RX | SPTE_W_MASK | SPTE_A_MASK;

/** A non-leaf SPTE pointing at pool table `childTable`. */
export function makeNonLeafSpte(childTable: number): bigint {
  return NONLEAF_BITS | pfnBits(childTable);
}

/**
 * Child offsets for make_huge_page_split_spte, precomputed so the split loop builds no BigInt from
 * numbers: SPLIT_OFFSETS[childLevel][i] = (i * pagesPerHpage(childLevel)) << 12.
 */
const SPLIT_OFFSETS: readonly (readonly bigint[])[] = (() => {
  const out: bigint[][] = [[]];
  for (let childLevel = PG_LEVEL_4K; childLevel < MAX_HUGE_LEVEL; childLevel++) {
    const row: bigint[] = [];
    for (let i = 0; i < PT_ENTRIES; i++) row.push(BigInt(i * pagesPerHpage(childLevel)) << SPTE_PFN_SHIFT);
    out.push(row);
  }
  return out;
})();

/** The 512 child offsets for splitting a huge SPTE into children at `childLevel` (1 or 2). */
function splitChildOffsets(childLevel: number): readonly bigint[] {
  const row = SPLIT_OFFSETS[childLevel];
  if (row === undefined || childLevel < PG_LEVEL_4K) throw new RangeError(`splitChildOffsets: childLevel must be 1 or 2, got ${childLevel}`);
  return row;
}

/**
 * The base every child of `huge` is built from at `childLevel`: the huge SPTE itself, with the
 * large bit cleared when the children are 4K. Children are `base | splitChildOffsets(childLevel)[i]`.
 * 4K children also get X (make_huge_page_split_spte: "the NX hugepage mitigation no longer
 * applies" once the page is 4K, and every guest page's access allows execution here, ACC_ALL);
 * without NX huge pages the huge SPTE had X already, so this changes nothing. 2M children of a
 * 1G page are still huge: they inherit the 1G page's X as it is.
 */
export function hugePageSplitBase(huge: bigint, childLevel: number): bigint {
  return childLevel === PG_LEVEL_4K ? (huge & ~SPTE_LARGE_MASK) | SPTE_X_MASK : huge;
}

/**
 * make_huge_page_split_spte: child `index` of the present large SPTE `huge`, at `childLevel`.
 * Inherits every bit (W, D, A, MMU-writable, host-writable); adds the child's offset into the PFN;
 * clears the large bit only for 4K children (2M children of a 1G page are still leaves), and makes
 * 4K children executable (hugePageSplitBase).
 */
export function makeHugePageSplitSpte(huge: bigint, childLevel: number, index: number): bigint {
  if (!isPresentLarge(huge)) throw new RangeError(`makeHugePageSplitSpte: not a present large SPTE: ${spteHex(huge)}`);
  return hugePageSplitBase(huge, childLevel) | splitChildOffsets(childLevel)[index]!;
}

/** The SPTE with W cleared (write protection for dirty logging; MMU-writable kept). */
export function wrprotSpte(spte: bigint): bigint {
  return spte & ~SPTE_W_MASK;
}

/** The SPTE made writable and dirty again (fast fault / write fault). */
export function makeWritableDirty(spte: bigint): bigint {
  return spte | SPTE_W_MASK | SPTE_D_MASK;
}

/** The SPTE with D cleared (clear-dirty, the PML-style alternative to write protection). */
export function clearDirtySpte(spte: bigint): bigint {
  return spte & ~SPTE_D_MASK;
}
