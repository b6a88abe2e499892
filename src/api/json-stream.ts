/**
 * Large JSON answers, serialised a slice at a time. `JSON.stringify` of a
 * query that matches a quarter of a large collection (150 MB of text) holds
 * the main thread for a second or more, and everything on it waits: health
 * probes, the heartbeat to the standbys, other requests. Here the answer's
 * array is written in slices of {@link SliceItems} items, and the stream
 * gives the event loop a turn (`setImmediate`) between two slices, so nothing
 * waits longer than one slice. The items are taken from an array built before
 * the first byte, which is one consistent state of the store. Objects are kept
 * as the JSON text JSON.stringify made of them when they were committed, so
 * an answer splices those texts in rather than parsing and writing each again:
 * the bytes are those JSON.stringify would write of the parsed answer.
 */
import { Readable } from 'node:stream';

/** Items serialised per slice (about 200 KB at ~200-byte values). */
export const SliceItems = 1000;

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * `{ ...head, [field]: [...] }` as JSON text, where `items` are already JSON
 * texts (`itemJson` makes each one): one string when the array is small, else
 * a stream that gives the event loop a turn between two slices. `head` must
 * not hold `field`; its properties come first, as JSON.stringify would write
 * them with `field` last.
 */
export function jsonWithArray<T>(head: Record<string, unknown>, field: string, items: readonly T[], itemJson: (item: T) => string, sliceItems = SliceItems): string | Readable {
  const open = JSON.stringify(head);
  const prefix = `${open.length === 2 ? '{' : `${open.slice(0, -1)},`}${JSON.stringify(field)}:[`;
  const slice = (at: number): string => items.slice(at, at + sliceItems).map(itemJson).join(',');
  if (items.length <= sliceItems) return `${prefix}${slice(0)}]}`;
  async function* text(): AsyncGenerator<string> {
    yield prefix;
    for (let at = 0; at < items.length; at += sliceItems) {
      yield (at === 0 ? '' : ',') + slice(at);
      if (at + sliceItems < items.length) await nextTurn();
    }
    yield ']}';
  }
  return Readable.from(text(), { objectMode: false });
}
