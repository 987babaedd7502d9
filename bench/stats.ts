/** Medians and ratios of repeated measurements; a figure is always kept with its runs. */

export interface Figure {
  /** Seconds of each run, in run order. */
  readonly runs: number[];
  readonly median: number;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) {
    return NaN;
  }
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export function figure(runs: readonly number[]): Figure {
  return { runs: runs.map(round), median: round(median(runs)) };
}

/** Ratios run by run (each measurement over the floor taken in the same run), and their median. */
export function ratio(ours: readonly number[], floor: readonly number[]): Figure {
  const n = Math.min(ours.length, floor.length);
  const r = Array.from({ length: n }, (_, i) => ours[i] / floor[i]);
  return { runs: r.map(round), median: round(median(r)) };
}

export function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** Seconds since `t0` (a Date.now() value). */
export function since(t0: number): number {
  return (Date.now() - t0) / 1000;
}
