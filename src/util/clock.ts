/**
 * Time for the agent: a clock and a scheduler of named one-shot timers (cert-manager's
 * scheduled work queue). The real one sits on Node timers; FakeClock moves only when a test
 * says so, so time-driven behaviour is tested without sleeping.
 */
export interface Clock {
  now(): Date;
  /** Runs fn at `at` (at once when it has passed); replaces an earlier timer of the same name. */
  schedule(name: string, at: Date, fn: () => void): void;
  cancel(name: string): void;
  /** When the named timer fires (undefined: not scheduled). */
  scheduled(name: string): Date | undefined;
}

/** Node's timers overflow above 2^31-1 ms (~24.8 days) and fire after 1 ms: wait in steps. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export class RealClock implements Clock {
  private readonly timers = new Map<string, { at: Date; timer: NodeJS.Timeout }>();

  /** keepAlive: pending timers keep the process running (Node's default); off, they do not. */
  constructor(private readonly opts: { keepAlive?: boolean } = {}) {}

  now(): Date {
    return new Date();
  }

  schedule(name: string, at: Date, fn: () => void): void {
    this.cancel(name);
    const arm = (): void => {
      const wait = at.getTime() - Date.now();
      const timer = setTimeout(
        () => {
          if (wait > MAX_TIMER_MS) return arm();
          this.timers.delete(name);
          fn();
        },
        Math.max(0, Math.min(wait, MAX_TIMER_MS)),
      );
      if (!this.opts.keepAlive) timer.unref();
      this.timers.set(name, { at, timer });
    };
    arm();
  }

  cancel(name: string): void {
    clearTimeout(this.timers.get(name)?.timer);
    this.timers.delete(name);
  }

  scheduled(name: string): Date | undefined {
    return this.timers.get(name)?.at;
  }
}

/** A clock for tests: advance() fires due timers in time order, each at its own time. */
export class FakeClock implements Clock {
  private t: number;
  private readonly timers = new Map<string, { at: number; fn: () => void; seq: number }>();
  private seq = 0;

  constructor(start: Date | string = "2026-11-29T12:00:00Z") {
    this.t = new Date(start).getTime();
  }

  now(): Date {
    return new Date(this.t);
  }

  schedule(name: string, at: Date, fn: () => void): void {
    this.timers.set(name, { at: Math.max(at.getTime(), this.t), fn, seq: this.seq++ });
  }

  cancel(name: string): void {
    this.timers.delete(name);
  }

  scheduled(name: string): Date | undefined {
    const t = this.timers.get(name);
    return t ? new Date(t.at) : undefined;
  }

  /**
   * Moves time forward by ms, firing every timer that falls due on the way (timers scheduled
   * by a firing timer included). `settle` runs after each firing: pass the agent's idle(), so
   * the work a timer started completes before the next one fires.
   */
  async advance(ms: number, settle: () => Promise<void> = async () => {}): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      const next = [...this.timers.entries()]
        .filter(([, v]) => v.at <= end)
        .sort(([, a], [, b]) => a.at - b.at || a.seq - b.seq)[0];
      if (!next) break;
      const [name, timer] = next;
      this.timers.delete(name);
      this.t = Math.max(this.t, timer.at);
      timer.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }
}
