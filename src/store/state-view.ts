/**
 * What reads see: the storage engine's durable state, with the read methods
 * the API and the services use. A view is made per request (Store.state); it
 * reads the engine as it is at each call (its source applies the acknowledged
 * commits first), and a synchronous run of calls (a page of a query) sees one
 * state, since the engine changes only between turns of the event loop.
 */
import type { Engine } from './engine.js';
import type { Json } from './json.js';
import type { SpaceInfo } from './space.js';
import type { TemplateDef } from './template.js';

/** Rows a lazy query reads from the engine at a time. */
const QueryPageRows = 256;

/** The durable state, read from the engine. */
export class StateView {
  /**
   * `source` gives the engine holding every acknowledged commit (it throws when the engine cannot: see
   * Store.state); `appliedSeq` the seq the engine holds, for a view that only asks that.
   */
  constructor(
    private readonly source: () => Engine,
    private readonly appliedSeq: () => number = () => source().appliedSeq,
  ) {}

  private get engine(): Engine {
    return this.source();
  }

  /** Seq of the last applied operation (0 for an empty store). */
  get seq(): number {
    return this.appliedSeq();
  }

  /** Every loaded template version, by name and then by version. */
  templates(): TemplateDef[] {
    return this.engine.templates();
  }

  /** One loaded template version, or undefined. */
  template(name: string, version: string): TemplateDef | undefined {
    return this.engine.template(name, version);
  }

  /** Every space, by id. */
  spaces(): SpaceInfo[] {
    return this.engine.spaces();
  }

  /** One space, or undefined. */
  space(id: string): SpaceInfo | undefined {
    return this.engine.space(id);
  }

  /** The object under `key`, parsed (a fresh value), or undefined; NotFoundError for an unknown space, BadRequestError for an invalid key. */
  getObject(spaceId: string, key: string): Json | undefined {
    const text = this.engine.text(spaceId, key);
    return text === undefined ? undefined : (JSON.parse(text) as Json);
  }

  /** The stored JSON text of the object under `key`, or undefined; errors as `getObject`. */
  getObjectText(spaceId: string, key: string): string | undefined {
    return this.engine.text(spaceId, key);
  }

  /**
   * Objects matching every `field=value` of `filter` on indexed fields (all
   * for an empty filter), by key, from the first key after `after` when given,
   * produced lazily a page of rows at a time. The filter is checked before
   * the first (NotFoundError, BadRequestError).
   */
  queryMatches(spaceId: string, filter: Record<string, string>, after?: string): IterableIterator<{ key: string; text: string }> {
    const first = this.engine.page(spaceId, filter, after, QueryPageRows);
    return pages(this.source, spaceId, filter, first);
  }

  /** The fields a space's template version indexes; NotFoundError for an unknown space. */
  indexedFields(spaceId: string): string[] {
    return this.engine.indexedFields(spaceId);
  }
}

function* pages(engine: () => Engine, spaceId: string, filter: Record<string, string>, first: { key: string; text: string }[]): IterableIterator<{ key: string; text: string }> {
  let page = first;
  for (;;) {
    yield* page;
    if (page.length < QueryPageRows) return;
    page = engine().page(spaceId, filter, page.at(-1)!.key, QueryPageRows);
  }
}
