/**
 * A tiny seeded PRNG (xoshiro128**, Blackman & Vigna) for the allocator's pressure model.
 *
 * Why our own: Math.random() cannot be seeded, and a pressure run must be reproducible from
 * `--seed` (each worker seeds with seed + workerId, so workers draw independent streams). The
 * generator is 4 Int32 words of state, a few shifts per draw, no allocation: cheap enough to
 * draw once per page-table allocation.
 */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number) {
    // Expand the 32-bit seed into 128 bits of state with splitmix32, so nearby seeds
    // (seed + workerId) give unrelated streams and the state is never all zero.
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) | 0;
    };
    this.#a = next();
    this.#b = next();
    this.#c = next();
    this.#d = next();
    if ((this.#a | this.#b | this.#c | this.#d) === 0) this.#a = 1;
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.#b, 5), 7), 9);
    const t = this.#b << 9;
    this.#c ^= this.#a;
    this.#d ^= this.#b;
    this.#b ^= this.#c;
    this.#a ^= this.#d;
    this.#c ^= t;
    this.#d = rotl(this.#d, 11);
    return result >>> 0;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  nextFloat(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform in (0, 1]: safe to take a logarithm of. */
  nextFloatNonZero(): number {
    return (this.nextU32() + 1) / 4294967296;
  }

  /** A standard normal draw (Box-Muller; the second value is discarded to keep no state). */
  nextNormal(): number {
    const u1 = this.nextFloatNonZero();
    const u2 = this.nextFloat();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return p > 0 && this.nextFloat() < p;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
