/**
 * Where a deploy's time went, phase by phase: printed once at its end (`deploy: timings: …`), so a
 * slow deploy says what was slow, and the bench reads the same line.
 */
export class PhaseClock {
  private readonly phases: { name: string; seconds: number }[] = [];
  private last: number;

  /** `start` is when the clock's first phase began (the process's start, by default). */
  constructor(private readonly start = performance.timeOrigin, private readonly now: () => number = () => performance.timeOrigin + performance.now()) {
    this.last = start;
  }

  /** Ends the phase running since the last mark, naming it. */
  mark(name: string): void {
    const t = this.now();
    this.phases.push({ name, seconds: (t - this.last) / 1000 });
    this.last = t;
  }

  /** Splits a phase already measured elsewhere (the engine's halves) into named parts that sum to it. */
  markParts(parts: readonly { name: string; seconds: number }[]): void {
    const t = this.now();
    const total = (t - this.last) / 1000;
    const known = parts.reduce((sum, p) => sum + p.seconds, 0);
    this.phases.push(...parts.slice(0, -1));
    // The last part takes the remainder, so the phases always sum to the whole.
    const lastPart = parts[parts.length - 1];
    if (lastPart) {
      this.phases.push({ name: lastPart.name, seconds: Math.max(0, total - (known - lastPart.seconds)) });
    }
    this.last = t;
  }

  /** `timings: start-up 1.2s, …, total 19.7s`, in the order marked. */
  line(): string {
    const total = (this.last - this.start) / 1000;
    return `timings: ${[...this.phases, { name: "total", seconds: total }].map((p) => `${p.name} ${p.seconds.toFixed(1)}s`).join(", ")}`;
  }
}

/** The phases of a `timings:` line, by name, in seconds; empty when the text has none. */
export function parseTimings(text: string): Record<string, number> {
  const line = /timings: ([^\n]+)/.exec(text)?.[1];
  const out: Record<string, number> = {};
  for (const part of line?.split(", ") ?? []) {
    const m = /^(.+) (\d+(?:\.\d+)?)s$/.exec(part);
    if (m) {
      out[m[1]] = Number(m[2]);
    }
  }
  return out;
}
