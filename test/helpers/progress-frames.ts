/**
 * The frames of a progress bar as a terminal received them: cli-progress
 * redraws one line with cursor moves and clears, so the raw output is cut at
 * every escape sequence and line end, and the pieces that start with the
 * bar's label are its frames.
 */

const Escape = String.fromCharCode(0x1b);
/** Escape sequences (CSI, save/restore cursor), carriage returns and newlines. */
const Separators = new RegExp(`${Escape}\\[[0-9;?]*[A-Za-z]|${Escape}[78]|\\r|\\n`);

/** Every frame of bar `label` in `output`, in order. */
export function progressFrames(output: string, label: string): string[] {
  return output
    .split(Separators)
    .map((piece) => piece.trim())
    .filter((piece) => piece.startsWith(`${label} [`));
}

/** The total a frame shows (`… of 10.0 MiB | …`), or null when the frame has none. */
export function frameTotal(frame: string): string | null {
  return / of (.+?) \| /.exec(frame)?.[1] ?? null;
}

/** What a broken ETA or figure looks like in a frame: cli-progress's INF/NULL cut to two characters, or a number that is none. */
export const BrokenFigure = /ETA (?:NF|LL)|NaN|Infinity|undefined|null/;
