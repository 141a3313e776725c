/**
 * runEmulation(config) -> Report: one dirty_log_perf_test run on real threads. The
 * configuration becomes a run plan (run_plan.ts: the actors and the steps), which the engine
 * executes (engine.ts).
 */
import type { RunConfig } from './config.js';
import { Engine } from './engine.js';
import type { EngineHooks } from './engine.js';
import type { Report } from './report_model.js';
import { planRun } from './run_plan.js';

export type RunHooks = EngineHooks;

export async function runEmulation(config: RunConfig, hooks: RunHooks = {}): Promise<Report> {
  return new Engine(planRun(config.options), config, hooks).run();
}
