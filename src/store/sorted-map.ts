/**
 * A persistent map from string keys to values, kept in key order: a B+tree
 * whose nodes are never changed once built. `set` and `delete` copy only the
 * path from the root to one leaf (a few arrays of at most `MaxNodeEntries`),
 * and every other node is shared with the previous version.
 *
 * Immutable.js (used for the rest of the state) has no sorted collection, and
 * sorting a million keys when a checkpoint starts would block the event loop
 * for a second; this tree hands out its entries in order, lazily, so a
 * snapshot can be serialised a slice at a time while writes go on.
 */

/** Most entries in one node; a node past this splits in two. */
const MaxNodeEntries = 64;
/** Most entries in one leaf (a restore cuts files into leaves). */
export const MaxLeafEntries = MaxNodeEntries;
/** Fewest entries in a node other than the root; a smaller one borrows from or merges with a sibling. */
const MinNodeEntries = 16;

/**
 * A leaf: up to MaxNodeEntries keys and their values. A leaf restored from a
 * checkpoint starts as the text its encoder made (see SortedMap.fromTexts)
 * and is read into keys and values on first use: a restore then costs a scan
 * of the text rather than two strings per entry, and the next checkpoint
 * writes the same text again without reading it.
 */
class Leaf<V> {
  readonly leaf = true as const;
  /** The text `memoBy` made of this leaf (see `encodedLeaves`). This, `unread`, `base` and the arrays dropped and read back again (`dropEntries`) are all that changes after a leaf is built; its entries never do. */
  memo: string | undefined = undefined;
  memoBy: LeafEncoder<V> | undefined = undefined;
  private k: readonly string[] | undefined;
  private v: readonly V[] | undefined;
  /**
   * The leaf this one was derived from by sets and deletes since its last
   * text was made (the nearest with a text): its encoder may copy the text of
   * entries the two share rather than encode them again. Dropped once used.
   */
  base: Leaf<V> | undefined = undefined;
  /** Reads `memo` back into keys and values while the leaf is unread. */
  private unread: LeafDecoder<V> | undefined = undefined;

  constructor(
    keys: readonly string[] | undefined,
    values: readonly V[] | undefined,
    /** Number of entries, known before the leaf is read. */
    readonly count: number,
    /** Its smallest key if known before the leaf is read; else read from the leaf when asked for. */
    private readonly firstKey: string | undefined,
  ) {
    this.k = keys;
    this.v = values;
  }

  /** Its smallest key (a branch needs it): without reading the leaf when it was made with it. */
  get first(): string {
    return this.firstKey ?? (this.keys[0] as string);
  }

  /** A leaf still to be read from `text`, which `encode` made and `decode` reads back. */
  static fromText<V>(text: string, count: number, first: string | undefined, decode: LeafDecoder<V>, encode: LeafEncoder<V>): Leaf<V> {
    const made = new Leaf<V>(undefined, undefined, count, first);
    made.memo = text;
    made.memoBy = encode;
    made.unread = decode;
    return made;
  }

  get keys(): readonly string[] {
    return this.k ?? this.read();
  }

  get values(): readonly V[] {
    if (this.v === undefined) this.read();
    return this.v as readonly V[];
  }

  /**
   * Keep only the text: the keys and values are read back from it with
   * `decode` when next used. A leaf just written by a checkpoint then holds
   * one string instead of two per entry, and the checkpoint makes no copies
   * of its values; a later change or lookup pays for a read of this leaf.
   */
  dropEntries(decode: LeafDecoder<V>): void {
    if (this.memo === undefined || this.count === 0) return;
    this.k = undefined;
    this.v = undefined;
    this.unread = decode;
  }

  private read(): readonly string[] {
    const decode = this.unread as LeafDecoder<V>;
    const { keys, values } = decode(this.memo as string, this.count);
    if (keys.length !== this.count || values.length !== this.count || (this.firstKey !== undefined && keys[0] !== this.firstKey)) {
      throw new Error(`a leaf read back holds ${keys.length} keys from ${String(keys[0])}, not the ${this.count} from ${String(this.firstKey)} it was made with`);
    }
    this.k = keys;
    this.v = values;
    this.unread = undefined;
    return keys;
  }
}

/**
 * Reads a leaf's `count` keys and values back from the text a LeafEncoder
 * made of them (values as the encoder left them). The text has been checked
 * when the leaf was made from it; this may trust it.
 */
export type LeafDecoder<V> = (text: string, count: number) => { keys: string[]; values: V[] };

/** A leaf given as text (see SortedMap.fromTexts): the text, its number of entries and its smallest key. */
export interface LeafText {
  text: string;
  count: number;
  first: string;
}

/**
 * Turns one leaf's entries into text. It must depend on nothing but the keys
 * and values, and may replace a value in `values` by an equal one (the same
 * string, say, cut from the text it made, so that the leaf's memory is that
 * one text); it must change nothing else. `base`, when given, is an earlier
 * leaf holding some of the same entries and the text this encoder made of
 * it: an entry with the same key and the very same value (===) may be copied
 * from that text rather than encoded again.
 */
export type LeafEncoder<V> = (keys: readonly string[], values: V[], base?: LeafBase<V>) => string;

/** An earlier leaf and its text, for a LeafEncoder to copy unchanged entries from. */
export interface LeafBase<V> {
  keys: readonly string[];
  values: readonly V[];
  text: string;
}

/** A leaf's own keys and values (see SortedMap.encodedLeavesWhere). */
export interface LeafEntries<V> {
  keys: readonly string[];
  values: readonly V[];
}

/** `keys[i]` is the smallest key under `children[i]`. */
interface Branch<V> {
  readonly leaf: false;
  readonly keys: readonly string[];
  readonly children: readonly Node<V>[];
}

type Node<V> = Leaf<V> | Branch<V>;

/** First index whose key is >= `key`. */
function lowerBound(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((keys[mid] as string) < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The child of a branch whose range holds `key`. */
function childIndex(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((keys[mid] as string) <= key) lo = mid + 1;
    else hi = mid;
  }
  return lo === 0 ? 0 : lo - 1;
}

// Copying helpers: hand-written loops, since slice-then-splice is twice as slow on the hot path.
function insertAt<T>(items: readonly T[], i: number, item: T): T[] {
  const out = new Array<T>(items.length + 1);
  for (let j = 0; j < i; j++) out[j] = items[j] as T;
  out[i] = item;
  for (let j = i; j < items.length; j++) out[j + 1] = items[j] as T;
  return out;
}

function replaceAt<T>(items: readonly T[], i: number, item: T): T[] {
  const out = items.slice();
  out[i] = item;
  return out;
}

function removeAt<T>(items: readonly T[], i: number): T[] {
  const out = new Array<T>(items.length - 1);
  for (let j = 0; j < i; j++) out[j] = items[j] as T;
  for (let j = i + 1; j < items.length; j++) out[j - 1] = items[j] as T;
  return out;
}

function splice<T>(items: readonly T[], start: number, removed: number, ...inserted: T[]): T[] {
  const copy = items.slice();
  copy.splice(start, removed, ...inserted);
  return copy;
}

function leaf<V>(keys: readonly string[], values: readonly V[]): Leaf<V> {
  return new Leaf(keys, values, keys.length, keys[0]);
}

/** A leaf of some of `from`'s entries (and maybe others), whose encoder may copy from the text of `from` or of its base. */
function derived<V>(keys: readonly string[], values: readonly V[], from: Leaf<V>): Leaf<V> {
  const made = leaf(keys, values);
  made.base = from.memo !== undefined ? from : from.base;
  return made;
}

/** The smallest key under `node`, without reading an unread leaf. */
function firstOf<V>(node: Node<V>): string {
  return node.leaf ? node.first : (node.keys[0] as string);
}

function branch<V>(children: readonly Node<V>[]): Branch<V> {
  return { leaf: false, keys: children.map(firstOf), children };
}

/** `node` with child `i` replaced by `child`, reusing the separator array when the child's first key is unchanged. */
function withChild<V>(node: Branch<V>, i: number, child: Node<V>): Branch<V> {
  const first = firstOf(child);
  const keys = node.keys[i] === first ? node.keys : replaceAt(node.keys, i, first);
  return { leaf: false, keys, children: replaceAt(node.children, i, child) };
}

/** `node` itself, or two halves of it when it has grown past the limit. */
function splitIfFull<V>(node: Node<V>): Node<V>[] {
  if (node.keys.length <= MaxNodeEntries) return [node];
  return halves(node);
}

function halves<V>(node: Node<V>): Node<V>[] {
  const half = Math.ceil(node.keys.length / 2);
  if (node.leaf) {
    return [derived(node.keys.slice(0, half), node.values.slice(0, half), node), derived(node.keys.slice(half), node.values.slice(half), node)];
  }
  return [branch(node.children.slice(0, half)), branch(node.children.slice(half))];
}

/** Two neighbouring nodes of one level as one node, or as two balanced ones if one would be too big. */
function rebalance<V>(left: Node<V>, right: Node<V>): Node<V>[] {
  const joined: Node<V> =
    left.leaf && right.leaf
      ? derived([...left.keys, ...right.keys], [...left.values, ...right.values], left)
      : branch([...(left as Branch<V>).children, ...(right as Branch<V>).children]);
  return splitIfFull(joined);
}

interface Change {
  added: boolean;
}

/** The replacement for `node` (one or two nodes), or undefined when nothing changes. */
function insert<V>(node: Node<V>, key: string, value: V, change: Change): Node<V>[] | undefined {
  if (node.leaf) {
    const i = lowerBound(node.keys, key);
    if (node.keys[i] === key) {
      if (node.values[i] === value) return undefined;
      return [derived(node.keys, replaceAt(node.values, i, value), node)];
    }
    change.added = true;
    return splitIfFull(derived(insertAt(node.keys, i, key), insertAt(node.values, i, value), node));
  }
  const i = childIndex(node.keys, key);
  const replaced = insert(node.children[i] as Node<V>, key, value, change);
  if (replaced === undefined) return undefined;
  const [first, second] = replaced as [Node<V>, Node<V> | undefined];
  const updated = withChild(node, i, first);
  if (second === undefined) return [updated];
  return splitIfFull({
    leaf: false,
    keys: insertAt(updated.keys, i + 1, firstOf(second)),
    children: insertAt(updated.children, i + 1, second),
  });
}

/** The replacement for `node` without `key` (possibly under-full), or undefined when `key` is absent. */
function remove<V>(node: Node<V>, key: string): Node<V> | undefined {
  if (node.leaf) {
    const i = lowerBound(node.keys, key);
    if (node.keys[i] !== key) return undefined;
    return derived(removeAt(node.keys, i), removeAt(node.values, i), node);
  }
  const i = childIndex(node.keys, key);
  const child = remove(node.children[i] as Node<V>, key);
  if (child === undefined) return undefined;
  if (child.keys.length >= MinNodeEntries) return withChild(node, i, child);
  // Under-full: join with a neighbour (every non-root node has one, since a root branch has two or more children).
  if (i + 1 < node.children.length) {
    return branch(splice(node.children, i, 2, ...rebalance(child, node.children[i + 1] as Node<V>)));
  }
  return branch(splice(node.children, i - 1, 2, ...rebalance(node.children[i - 1] as Node<V>, child)));
}

/**
 * The leaves under `root` in order; with `after`, from the one whose range
 * holds `after` (it may hold only smaller keys). One flat loop rather than
 * nested generators, which cost a resume per level per entry.
 */
function* leaves<V>(root: Node<V>, after?: string): Generator<Leaf<V>, void, undefined> {
  if (root.leaf) {
    yield root;
    return;
  }
  // Down the path to `after` first (each branch starts at the child holding it), then on in order.
  const seek = (branch: Branch<V>): number => (after === undefined ? 0 : childIndex(branch.keys, after));
  const path: Branch<V>[] = [root];
  const at: number[] = [seek(root)];
  while (path.length > 0) {
    const top = path.length - 1;
    const parent = path[top] as Branch<V>;
    const i = at[top] as number;
    if (i === parent.children.length) {
      path.pop();
      at.pop();
      continue;
    }
    at[top] = i + 1;
    const child = parent.children[i] as Node<V>;
    if (child.leaf) {
      after = undefined;
      yield child;
    } else {
      path.push(child);
      at.push(seek(child));
    }
  }
}

function* walk<V>(node: Node<V>): Generator<[string, V], void, undefined> {
  for (const leaf of leaves(node)) {
    for (let i = 0; i < leaf.keys.length; i++) yield [leaf.keys[i] as string, leaf.values[i] as V];
  }
}

function* walkKeys<V>(node: Node<V>): Generator<string, void, undefined> {
  for (const leaf of leaves(node)) yield* leaf.keys;
}

/** The entries whose keys come after `after`, in order. */
function* walkAfter<V>(node: Node<V>, after: string): Generator<[string, V], void, undefined> {
  let first = true;
  for (const leaf of leaves(node, after)) {
    const keys = leaf.keys;
    let i = 0;
    if (first) {
      i = lowerBound(keys, after);
      if (keys[i] === after) i++;
      first = false;
    }
    for (; i < keys.length; i++) yield [keys[i] as string, leaf.values[i] as V];
  }
}

/** The text `encode` makes of `leaf`, made on first use and kept with the leaf. */
function encoded<V>(leaf: Leaf<V>, encode: LeafEncoder<V>, decode?: LeafDecoder<V>): string {
  if (leaf.memoBy !== encode || leaf.memo === undefined) {
    leaf.memo = encode(leaf.keys, leaf.values as V[], baseOf(leaf, encode));
    leaf.memoBy = encode;
    leaf.base = undefined;
    if (decode !== undefined) leaf.dropEntries(decode);
  }
  return leaf.memo;
}

/** The base `encode` may copy from when encoding `leaf`: one whose text it made. */
function baseOf<V>(leaf: Leaf<V>, encode: LeafEncoder<V>): LeafBase<V> | undefined {
  const base = leaf.base;
  if (base === undefined || base.memoBy !== encode || base.memo === undefined) return undefined;
  return { keys: base.keys, values: base.values, text: base.memo };
}

/** Nodes of one level cut into balanced groups of at most `MaxNodeEntries`, each at least half full when there are several. */
function groups<T>(items: readonly T[]): T[][] {
  const count = Math.max(1, Math.ceil(items.length / MaxNodeEntries));
  const out: T[][] = [];
  for (let g = 0; g < count; g++) {
    out.push(items.slice(Math.floor((g * items.length) / count), Math.floor(((g + 1) * items.length) / count)));
  }
  return out;
}

const EmptyRoot: Leaf<never> = new Leaf<never>([], [], 0, '');

/** A persistent string-keyed map in key order (UTF-16 code unit order, as `<` compares strings). */
export class SortedMap<V> {
  private static readonly emptyMap = new SortedMap<never>(EmptyRoot, 0);

  /** A text made of the whole map for `memoTag` (see `memo`): the map never changes, so it stays right. */
  private memoText: string | undefined = undefined;
  private memoTag: string | undefined = undefined;

  private constructor(
    private readonly root: Node<V>,
    /** Number of entries; O(1). */
    readonly size: number,
  ) {}

  /** The empty map (one shared instance). */
  static empty<V>(): SortedMap<V> {
    // Holds no values, so it serves for every V (its leaf's memo is the empty text whatever the encoder).
    return SortedMap.emptyMap as unknown as SortedMap<V>;
  }

  /** A map built in O(n) from entries whose keys are strictly ascending; throws Error otherwise. */
  static fromSorted<V>(entries: readonly (readonly [string, V])[]): SortedMap<V> {
    return SortedMap.fromSortedArrays(
      entries.map((e) => e[0]),
      entries.map((e) => e[1]),
    );
  }

  /**
   * A map built in O(n) from `keys` (strictly ascending; throws Error otherwise)
   * and `values[i]` for `keys[i]`. Takes no tuples, so a restore of a million
   * objects does not allocate a million of them.
   */
  static fromSortedArrays<V>(keys: readonly string[], values: readonly V[], checked = false): SortedMap<V> {
    if (keys.length !== values.length) throw new Error(`fromSortedArrays: ${keys.length} keys but ${values.length} values`);
    return SortedMap.build(keys, (start, end) => values.slice(start, end), checked);
  }

  /** A map built in O(n) from `keys` (strictly ascending; throws Error otherwise), each holding `value`: a set, such as a posting list. */
  static fromSortedKeys<V>(keys: readonly string[], value: V, checked = false): SortedMap<V> {
    return SortedMap.build(keys, (start, end) => new Array<V>(end - start).fill(value), checked);
  }

  /**
   * A map of leaves given as the text `encode` made of each (a restore's
   * object file, cut at leaf boundaries), read with `decode` when first used.
   * The leaves must be in key order, and each but a lone one hold
   * MinNodeEntries to MaxNodeEntries entries: cut them as `leafSizes` says.
   */
  static fromTexts<V>(texts: readonly LeafText[], decode: LeafDecoder<V>, encode: LeafEncoder<V>): SortedMap<V> {
    if (texts.length === 0) return SortedMap.empty();
    let size = 0;
    const leaves = texts.map((t) => {
      if (t.count < 1 || t.count > MaxNodeEntries || (texts.length > 1 && t.count < MinNodeEntries)) {
        throw new Error(`fromTexts: a leaf of ${t.count} entries (each must hold ${texts.length > 1 ? MinNodeEntries : 1} to ${MaxNodeEntries})`);
      }
      size += t.count;
      return Leaf.fromText(t.text, t.count, t.first, decode, encode);
    });
    return SortedMap.ofLeaves(leaves, size);
  }

  /** A map of one leaf (1 to MaxNodeEntries entries) given as text, as fromTexts; `first` may be left to be read from it when needed. */
  static fromText<V>(text: string, count: number, first: string | undefined, decode: LeafDecoder<V>, encode: LeafEncoder<V>): SortedMap<V> {
    if (count < 1 || count > MaxNodeEntries) throw new Error(`fromText: a leaf of ${count} entries (it must hold 1 to ${MaxNodeEntries})`);
    return new SortedMap(Leaf.fromText(text, count, first, decode, encode), count);
  }

  /** How many entries each leaf of a map of `size` entries holds when it is built at once (fromSortedArrays, fromTexts), in order. */
  static leafSizes(size: number): number[] {
    const count = Math.ceil(size / MaxNodeEntries);
    const sizes = new Array<number>(count);
    for (let g = 0; g < count; g++) sizes[g] = Math.floor(((g + 1) * size) / count) - Math.floor((g * size) / count);
    return sizes;
  }

  /** `checked`: the caller has already made sure the keys are strictly ascending (a restore checks them as it reads them). */
  private static build<V>(keys: readonly string[], valuesOf: (start: number, end: number) => V[], checked: boolean): SortedMap<V> {
    if (keys.length === 0) return SortedMap.empty();
    for (let i = 1; !checked && i < keys.length; i++) {
      if (!((keys[i - 1] as string) < (keys[i] as string))) throw new Error(`fromSorted: keys must be strictly ascending (at index ${i})`);
    }
    const leaves: Leaf<V>[] = [];
    let start = 0;
    for (const size of SortedMap.leafSizes(keys.length)) {
      leaves.push(leaf(keys.slice(start, start + size), valuesOf(start, start + size)));
      start += size;
    }
    return SortedMap.ofLeaves(leaves, keys.length);
  }

  /** The map whose leaves, in order, are `leaves` (at least one), holding `size` entries: the branches above them built level by level. */
  private static ofLeaves<V>(leaves: Leaf<V>[], size: number): SortedMap<V> {
    let level: Node<V>[] = leaves;
    while (level.length > 1) level = groups(level).map((g) => branch(g));
    return new SortedMap(level[0] as Node<V>, size);
  }

  /** The value under `key`, or undefined. */
  get(key: string): V | undefined {
    let node = this.root;
    while (!node.leaf) node = node.children[childIndex(node.keys, key)] as Node<V>;
    const i = lowerBound(node.keys, key);
    return node.keys[i] === key ? node.values[i] : undefined;
  }

  /** Whether `key` is present. */
  has(key: string): boolean {
    let node = this.root;
    while (!node.leaf) node = node.children[childIndex(node.keys, key)] as Node<V>;
    return node.keys[lowerBound(node.keys, key)] === key;
  }

  /** A map with `key` set to `value`; this same map when it already holds that very value. */
  set(key: string, value: V): SortedMap<V> {
    const change: Change = { added: false };
    const replaced = insert(this.root, key, value, change);
    if (replaced === undefined) return this;
    const root = replaced.length === 1 ? (replaced[0] as Node<V>) : branch(replaced);
    return new SortedMap(root, this.size + (change.added ? 1 : 0));
  }

  /** A map without `key`; this same map when `key` is absent. */
  delete(key: string): SortedMap<V> {
    let root = remove(this.root, key);
    if (root === undefined) return this;
    if (!root.leaf && root.children.length === 1) root = root.children[0] ?? root;
    return new SortedMap(root, this.size - 1);
  }

  /** Entries in key order, produced lazily. */
  entries(): IterableIterator<[string, V]> {
    return walk(this.root);
  }

  /** Keys in order, produced lazily. */
  keys(): IterableIterator<string> {
    return walkKeys(this.root);
  }

  /** Entries whose keys come strictly after `after`, in key order, produced lazily: found in O(log n), as a page of a keyset query starts. */
  entriesAfter(after: string): IterableIterator<[string, V]> {
    return walkAfter(this.root, after);
  }

  /** Whether the map is one leaf (at most 64 entries; a map that shrank to that many may still be more). */
  get oneLeaf(): boolean {
    return this.root.leaf;
  }

  /**
   * For a map of one leaf (at most 64 entries): the text `encode` makes of it
   * (the leaf's kept text if it has one; see `encodedLeaves`), without an
   * iterator; undefined for a larger map. A text made now is not kept with
   * the leaf: the caller keeps a text holding it (with `memo`), so that it is
   * not held twice.
   */
  singleLeafText(encode: LeafEncoder<V>): string | undefined {
    const root = this.root;
    if (!root.leaf) return undefined;
    return root.memoBy === encode && root.memo !== undefined ? root.memo : encode(root.keys, root.values as V[], baseOf(root, encode));
  }

  /**
   * One text made of the whole map by `make` for `tag` (an index line, for the
   * value `tag`), made on first use and kept with this map; another tag makes
   * it again. Maps never change, so a kept text is right as long as `make`
   * depends only on the map and the tag.
   */
  memo(tag: string, make: (map: SortedMap<V>, tag: string) => string): string {
    if (this.memoTag !== tag || this.memoText === undefined) {
      this.memoText = make(this, tag);
      this.memoTag = tag;
    }
    return this.memoText;
  }

  /** Keep `text` as what `memo(tag, …)` would make (a restore has it as read from the file). */
  remember(tag: string, text: string): void {
    this.memoText = text;
    this.memoTag = tag;
  }

  /** The text kept for `tag` (by `memo` or `remember`), if any, which is then no longer kept: the caller keeps it elsewhere. */
  takeMemo(tag: string): string | undefined {
    const text = this.memoTag === tag ? this.memoText : undefined;
    this.memoText = undefined;
    this.memoTag = undefined;
    return text;
  }

  /**
   * Each leaf's text as `encode` makes it, in key order, lazily. A leaf's text
   * is made once and kept with the leaf, which later versions of the map share
   * until a change replaces it: calling this again after a few changes
   * re-encodes only the leaves they touched. Pass the same function each time
   * (a module-level one): a leaf keeps the text of the last encoder only.
   * With `decode`, a leaf whose text is made now keeps only the text, read
   * back with `decode` when next used (Leaf.dropEntries).
   */
  *encodedLeaves(encode: LeafEncoder<V>, decode?: LeafDecoder<V>): IterableIterator<string> {
    for (const leaf of leaves(this.root)) yield encoded(leaf, encode, decode);
  }

  /**
   * As `encodedLeaves`, for a map only some of whose leaves `encode` makes
   * text of: each leaf's text where `encodes(keys, values)` says so (kept with
   * the leaf), else the leaf's own key and value arrays, not to be changed.
   * `encodes` must depend only on the leaf's keys and values.
   */
  *encodedLeavesWhere(encode: LeafEncoder<V>, encodes: (keys: readonly string[], values: readonly V[]) => boolean): IterableIterator<string | LeafEntries<V>> {
    for (const leaf of leaves(this.root)) {
      if ((leaf.memoBy === encode && leaf.memo !== undefined) || encodes(leaf.keys, leaf.values)) yield encoded(leaf, encode);
      else yield { keys: leaf.keys, values: leaf.values };
    }
  }

  /** Same as `entries()`. */
  [Symbol.iterator](): IterableIterator<[string, V]> {
    return walk(this.root);
  }

  /** Checks the tree's shape (order, fill, separator keys, size); for tests. Throws Error on the first fault. */
  assertValid(): void {
    let count = 0;
    let previous: string | undefined;
    const visit = (node: Node<V>, depth: number, isRoot: boolean): number => {
      if (!isRoot && node.keys.length < MinNodeEntries) throw new Error(`node at depth ${depth} has ${node.keys.length} entries`);
      if (node.keys.length > MaxNodeEntries) throw new Error(`node at depth ${depth} has ${node.keys.length} entries`);
      if (node.leaf) {
        if (node.keys.length !== node.values.length) throw new Error('leaf keys and values differ in length');
        for (const key of node.keys) {
          if (previous !== undefined && !(previous < key)) throw new Error(`keys out of order: ${previous} then ${key}`);
          previous = key;
          count++;
        }
        return depth;
      }
      if (isRoot && node.children.length < 2) throw new Error('root branch has fewer than two children');
      const depths = new Set<number>();
      node.children.forEach((child, i) => {
        if (child.keys[0] !== node.keys[i] || firstOf(child) !== node.keys[i]) throw new Error(`separator ${i} at depth ${depth} is not its child's first key`);
        depths.add(visit(child, depth + 1, false));
      });
      if (depths.size !== 1) throw new Error('leaves at different depths');
      return [...depths][0] as number;
    };
    visit(this.root, 0, true);
    if (count !== this.size) throw new Error(`size ${this.size} but ${count} entries`);
  }
}
