/**
 * A worker's latency histograms (ns): mmu_lock wait and hold times, vCPU fault times. Private to
 * the worker (not shared memory); handed to the main thread as plain data per phase
 * (takeData); report_build.ts merges many workers' histograms by name.
 *
 * Below the MMU: mmu_lock.ts records into a WorkerTiming without knowing the VM.
 */
import { Histogram } from './histogram.js';
import type { HistogramData } from './histogram.js';

export type TimingName = 'readWait' | 'readHold' | 'writeWait' | 'writeHold' | 'faultFast' | 'faultSlow';
export type WorkerTimingData = Record<TimingName, HistogramData>;

/** This worker's latency histograms (ns). Private to the worker; replaced wholesale by takeData(). */
export class WorkerTiming {
  readWait = new Histogram();
  readHold = new Histogram();
  writeWait = new Histogram();
  writeHold = new Histogram();
  faultFast = new Histogram();
  faultSlow = new Histogram();

  /** Plain data of every histogram, then start fresh ones. */
  takeData(): WorkerTimingData {
    const d: WorkerTimingData = {
      readWait: this.readWait.toData(),
      readHold: this.readHold.toData(),
      writeWait: this.writeWait.toData(),
      writeHold: this.writeHold.toData(),
      faultFast: this.faultFast.toData(),
      faultSlow: this.faultSlow.toData(),
    };
    this.readWait = new Histogram();
    this.readHold = new Histogram();
    this.writeWait = new Histogram();
    this.writeHold = new Histogram();
    this.faultFast = new Histogram();
    this.faultSlow = new Histogram();
    return d;
  }
}
