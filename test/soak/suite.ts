/** What every reliability suite provides to `npm run soak` and to its few-trial test in `npm test`. */

/** Options of one run. */
export interface SuiteOptions {
  /** Trials (or requests, for the fuzz suite) to run. */
  trials: number;
  /** A progress line for a person watching. */
  log: (line: string) => void;
}

/** The outcome: figures for docs/RELIABILITY.md and every violation found (none is the target). */
export interface SuiteReport {
  /** One line: trials, faults injected, inputs tried, what was lost. */
  summary: string;
  /** Each broken promise, in words (a lost write, a corrupt listed checkpoint, a 5xx, …). */
  violations: string[];
  /** The figures behind the summary, for tests to assert on. */
  figures: Record<string, number>;
}

/** A reliability suite. */
export interface Suite {
  /** Trials `npm run soak -- NAME` runs without --trials. */
  soakTrials: number;
  run(options: SuiteOptions): Promise<SuiteReport>;
}
