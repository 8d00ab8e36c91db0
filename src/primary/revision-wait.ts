// "Has the source revision R been loaded yet?" for callers that wrote R themselves (a Chainfire
// admin action waits until its own write comes back through the watch before it answers).

export class RevisionWaiter {
  private current = 0;
  private readonly waiters = new Set<() => void>();

  /** The source revision just loaded (never goes back). */
  reached(revision: number): void {
    if (revision > this.current) this.current = revision;
    for (const check of [...this.waiters]) check();
  }

  /** True once a revision ≥ `revision` is loaded; false after `timeoutMs`. */
  until(revision: number, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(ok);
      };
      const check = (): void => {
        if (this.current >= revision) done(true);
      };
      const timer = setTimeout(() => done(false), Math.max(0, timeoutMs));
      this.waiters.add(check);
      check();
    });
  }
}
