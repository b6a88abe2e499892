/**
 * Long passes over a snapshot (hashing, compressing a gigabyte) run on the
 * event loop that also serves commits and health checks. A synchronous source
 * iterated with `for await` only yields to microtasks, so without help a pass
 * would hold the loop for seconds. A Breather yields a whole turn whenever the
 * current one has run past its budget.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';

/** How long a pass may hold the event loop before it yields a turn. */
export const TurnBudgetMs = 4;

/** Yields to the event loop once the current turn has used up its budget. */
export class Breather {
  private turnStarted = performance.now();

  constructor(private readonly budgetMs = TurnBudgetMs) {}

  /** Call between units of work; resolves at once unless the turn is used up. */
  async breathe(): Promise<void> {
    if (this.due()) await this.rest();
  }

  /** Whether the turn is used up; for a loop that should not pay an `await` per unit when it is not. */
  due(): boolean {
    return performance.now() - this.turnStarted >= this.budgetMs;
  }

  /** Yield a whole turn now. */
  async rest(): Promise<void> {
    await nextTurn();
    this.turnStarted = performance.now();
  }
}
