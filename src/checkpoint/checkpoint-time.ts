/** Checkpoint times: ISO 8601 UTC with 7 fractional digits, as the vendor checkpoint API shows (`2023-06-16T16:55:28.0760109Z`). */

/** Now, to 100 ns where the clock gives it. */
export function checkpointTime(): string {
  const epochMs = performance.timeOrigin + performance.now();
  const whole = Math.floor(epochMs);
  const ticks = Math.floor((epochMs - whole) * 10_000); // 100 ns units below the millisecond
  const iso = new Date(whole).toISOString(); // …:28.076Z
  return `${iso.slice(0, -1)}${String(ticks).padStart(4, '0')}Z`;
}
