/**
 * Progress on stderr for runs longer than about a second: phase, iteration k of N, elapsed.
 * Only when stderr is a terminal and --quiet is not given; one line rewritten in place with
 * `\r`, erased when the run ends so the report starts on a clean line.
 *
 * A ReportSink (report_sink.ts): the engine's tick feed sets the phase and its live detail; the
 * line is redrawn on its own timer.
 */
import type { ReportSink, RunSample } from './report_sink.js';

export interface ProgressOptions {
  /** Progress is shown only if this is true (TTY and not --quiet). */
  readonly enabled: boolean;
  readonly stream: { write(s: string): boolean; readonly columns?: number };
  /** Nothing is printed before this much time has passed (short runs stay silent). */
  readonly delayMs?: number;
  readonly intervalMs?: number;
}

export class Progress implements ReportSink {
  readonly #opts: ProgressOptions;
  readonly #t0 = performance.now();
  #label = 'starting';
  #detail: (() => string) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #shown = false;

  constructor(opts: ProgressOptions) {
    this.#opts = opts;
  }

  /** Start the refresh timer (unref'd: progress never keeps the process alive). */
  start(): void {
    if (!this.#opts.enabled || this.#timer !== undefined) return;
    const delay = this.#opts.delayMs ?? 1000;
    this.#timer = setTimeout(() => {
      this.render();
      this.#timer = setInterval(() => this.render(), this.#opts.intervalMs ?? 250);
      this.#timer.unref();
    }, delay);
    this.#timer.unref();
  }

  /** The current phase, e.g. "iteration 2 of 5: dirty memory"; `detail` adds live numbers. */
  setPhase(label: string, detail?: () => string): void {
    this.#label = label;
    this.#detail = detail;
  }

  /** The tick feed: "iteration 2 of 5: dirty (40% of the pages, ...)". */
  tick(sample: RunSample): void {
    const it = /^iteration (\d+) (\w+)$/.exec(sample.phase);
    const label = it === null ? sample.phase : `iteration ${it[1]} of ${sample.iterations}: ${it[2]}`;
    this.setPhase(label, () => sample.detail);
  }

  /** The run stopped: erase the line. */
  end(): void {
    this.stop();
  }

  /** The line as it would be printed now (exported for tests). */
  line(): string {
    const elapsed = ((performance.now() - this.#t0) / 1000).toFixed(1);
    const detail = this.#detail?.() ?? '';
    return `[emulate ${elapsed}s] ${this.#label}${detail === '' ? '' : ` (${detail})`}`;
  }

  render(): void {
    const c = this.#opts.stream.columns;
    const cols = c !== undefined && c > 20 ? c - 1 : 100;
    // \r back to column 0, the line, then ESC[K: erase whatever a longer previous line left.
    this.#opts.stream.write(`\r${this.line().slice(0, cols)}\x1b[K`);
    this.#shown = true;
  }

  /** Stop and erase the line. */
  stop(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
    if (this.#shown) {
      this.#opts.stream.write('\r\x1b[K');
      this.#shown = false;
    }
  }
}
