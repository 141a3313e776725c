/**
 * The structural rules of a Chrome Trace Event file, as trace.test.ts checks them on real traces
 * from `--trace` and on deliberately malformed ones (which it must reject).
 */
interface Ev {
  readonly name?: unknown;
  readonly ph?: unknown;
  readonly ts?: unknown;
  readonly dur?: unknown;
  readonly pid?: unknown;
  readonly tid?: unknown;
  readonly args?: { readonly name?: unknown };
}

/** Tolerance for comparing µs rounded to the ns (ts + dur is a sum of two rounded doubles). */
export const EPS_US = 0.002;

/**
 * The structural rules of a trace; returns the violations (empty = well formed):
 *  - every event has a name, a known phase, a finite ts >= 0 and integer pid/tid;
 *  - "X" events have a finite dur >= 0; "B"/"E" pair up per thread, E closing the last open B;
 *  - per thread, the events come in non-decreasing ts order, and slices nest (a slice that starts
 *    inside another ends inside it);
 *  - per counter track (pid, name), "C" timestamps are non-decreasing and the values numbers;
 *  - every tid an event uses has a thread_name metadata event with a name.
 */
export function checkTrace(trace: { readonly traceEvents?: unknown }): string[] {
  const errors: string[] = [];
  if (!Array.isArray(trace.traceEvents)) return ['traceEvents is not an array'];
  const named = new Set<string>();
  const used = new Set<string>();
  const lastTs = new Map<string, number>();
  const open = new Map<string, { name: unknown; end: number }[]>();
  const counterTs = new Map<string, number>();
  (trace.traceEvents as Ev[]).forEach((e, i) => {
    const at = `event ${i} (${String(e.name)})`;
    if (typeof e.name !== 'string' || e.name === '') errors.push(`${at}: no name`);
    if (!Number.isInteger(e.pid) || !Number.isInteger(e.tid)) errors.push(`${at}: pid/tid not integers`);
    if (typeof e.ts !== 'number' || !Number.isFinite(e.ts) || e.ts < 0) errors.push(`${at}: bad ts ${String(e.ts)}`);
    const ts = Number(e.ts);
    const thread = `${String(e.pid)}/${String(e.tid)}`;
    switch (e.ph) {
      case 'M':
        if (e.name === 'thread_name') {
          if (typeof e.args?.name === 'string' && e.args.name !== '') named.add(thread);
          else errors.push(`${at}: thread_name without a name`);
        }
        return;
      case 'C': {
        const key = `${String(e.pid)}/${String(e.name)}`;
        if ((counterTs.get(key) ?? -1) > ts) errors.push(`${at}: counter ts goes back`);
        counterTs.set(key, ts);
        for (const v of Object.values((e.args ?? {}) as Record<string, unknown>)) if (typeof v !== 'number') errors.push(`${at}: counter value not a number`);
        return;
      }
      case 'X':
      case 'B':
      case 'E':
      case 'i':
        break;
      default:
        errors.push(`${at}: unknown ph ${String(e.ph)}`);
        return;
    }
    used.add(thread);
    if ((lastTs.get(thread) ?? -1) > ts + EPS_US) errors.push(`${at}: ts ${ts} goes back on thread ${thread}`);
    lastTs.set(thread, ts);
    const stack = open.get(thread) ?? [];
    open.set(thread, stack);
    // Slices that ended by now are closed (complete events only; B slices stay until their E).
    while (stack.length > 0 && Number.isFinite(stack[stack.length - 1]!.end) && stack[stack.length - 1]!.end <= ts + EPS_US) stack.pop();
    if (e.ph === 'X') {
      if (typeof e.dur !== 'number' || !Number.isFinite(e.dur) || e.dur < 0) {
        errors.push(`${at}: bad dur ${String(e.dur)}`);
        return;
      }
      const end = ts + e.dur;
      const parent = stack[stack.length - 1];
      if (parent !== undefined && end > parent.end + EPS_US)
        errors.push(`${at}: [${ts}, ${end}] overlaps ${String(parent.name)} ending ${parent.end} on thread ${thread}`);
      stack.push({ name: e.name, end });
    } else if (e.ph === 'B') {
      stack.push({ name: e.name, end: Number.POSITIVE_INFINITY });
    } else if (e.ph === 'E') {
      const top = stack.pop();
      if (top === undefined || top.end !== Number.POSITIVE_INFINITY) errors.push(`${at}: E without an open B on thread ${thread}`);
    }
  });
  for (const [thread, stack] of open) if (stack.some((s) => s.end === Number.POSITIVE_INFINITY)) errors.push(`thread ${thread}: B without E`);
  for (const thread of used) if (!named.has(thread)) errors.push(`thread ${thread}: no thread_name`);
  return errors;
}
