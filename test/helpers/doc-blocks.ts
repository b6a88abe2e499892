/**
 * The project's Markdown documents as the documentation tests read them:
 * fenced code blocks with their info string and line, the blocks marked for a
 * test (`{test}`, `{test=NAME}` after the language), and the relative links
 * and #anchors between the documents (docs/TESTING.md, "Documentation tests").
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root folder. */
export const RepoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** One fenced code block. */
export interface FencedBlock {
  /** The file, relative to the repository root (`docs/CLI.md`). */
  file: string;
  /** The line of the opening fence, from 1. */
  line: number;
  /** The info string after the opening fence (`sh {test}`), trimmed. */
  info: string;
  /** The block's text, without the fences, its indentation removed, ending in a newline. */
  text: string;
}

/** A block marked for a test: `{test}` (the shell examples) or `{test=NAME}` (another runner). */
export interface MarkedBlock extends FencedBlock {
  /** The language word of the info string (`sh`, `haproxy`). */
  language: string;
  /** `shell` for `{test}`, else the NAME of `{test=NAME}`. */
  runner: string;
}

/** The documents the tests read, in the order their examples run: README.md, then docs/*.md by name. */
export function documentFiles(): string[] {
  const docs = readdirSync(path.join(RepoRoot, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`);
  return ['README.md', ...docs];
}

/** Every Markdown file whose links are checked: the documents and bench/'s. */
export function linkedFiles(): string[] {
  const bench = readdirSync(path.join(RepoRoot, 'bench'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `bench/${f}`);
  return [...documentFiles(), ...bench];
}

const FenceOpen = /^( {0,3}|\s*)(`{3,}|~{3,})(.*)$/;

/**
 * The fenced code blocks of a Markdown text (CommonMark's rules as far as the
 * documents need them: a fence of N backticks or tildes is closed only by N or
 * more of the same character, so a longer fence can show a shorter one as
 * text; a fence may be indented, as in a list item).
 */
export function fencedBlocks(file: string, markdown: string): FencedBlock[] {
  const lines = markdown.split('\n');
  const blocks: FencedBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FenceOpen.exec(lines[i]!);
    if (open === null) continue;
    const indent = open[1]!.length;
    const fence = open[2]!;
    const closing = new RegExp(`^\\s*${fence[0] === '`' ? '`' : '~'}{${fence.length},}\\s*$`);
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && !closing.test(lines[j]!)) {
      body.push(lines[j]!.slice(Math.min(indent, lines[j]!.length - lines[j]!.trimStart().length)));
      j++;
    }
    blocks.push({ file, line: i + 1, info: open[3]!.trim(), text: body.length === 0 ? '' : `${body.join('\n')}\n` });
    i = j;
  }
  return blocks;
}

const Marker = /^(\S+)\s+\{test(?:=([a-z0-9-]+))?\}$/;

/** The blocks of `files` marked for a test, in file order; throws on a marker it cannot read (a typo must not drop a block silently). */
export function markedBlocks(files: string[] = documentFiles()): MarkedBlock[] {
  const marked: MarkedBlock[] = [];
  for (const file of files) {
    for (const block of fencedBlocks(file, readFileSync(path.join(RepoRoot, file), 'utf8'))) {
      if (!block.info.includes('{')) continue;
      const m = Marker.exec(block.info);
      if (m === null) throw new Error(`${file}:${block.line}: unreadable test marker "${block.info}" (write \`sh {test}\` or \`LANG {test=NAME}\`)`);
      marked.push({ ...block, language: m[1]!, runner: m[2] ?? 'shell' });
    }
  }
  return marked;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped (not `-` or `_`), each space a `-`. */
export function headingAnchor(heading: string): string {
  return heading
    .replace(/`/g, '')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\p{M}\p{Pc}\- ]/gu, '')
    .replace(/ /g, '-');
}

/** The anchors a Markdown text's headings make (outside code blocks), with GitHub's -1, -2 for repeats. */
export function anchorsOf(markdown: string): Set<string> {
  const inBlock = new Set<number>();
  for (const b of fencedBlocks('', markdown)) {
    const count = b.text === '' ? 0 : b.text.split('\n').length - 1;
    for (let l = b.line; l <= b.line + count + 1; l++) inBlock.add(l);
  }
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  markdown.split('\n').forEach((line, i) => {
    if (inBlock.has(i + 1)) return;
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (m === null) return;
    const base = headingAnchor(m[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  });
  return anchors;
}

/** A relative link that leads nowhere: the file, its line, the target, and why. */
export interface BrokenLink {
  file: string;
  line: number;
  target: string;
  problem: string;
}

/** Every relative link (`[text](path#anchor)`, `[text](#anchor)`) in `files` whose file or heading does not exist. */
export function brokenLinks(files: string[] = linkedFiles()): BrokenLink[] {
  const broken: BrokenLink[] = [];
  const anchorCache = new Map<string, Set<string>>();
  const anchors = (rel: string): Set<string> => {
    let set = anchorCache.get(rel);
    if (set === undefined) {
      set = anchorsOf(readFileSync(path.join(RepoRoot, rel), 'utf8'));
      anchorCache.set(rel, set);
    }
    return set;
  };
  for (const file of files) {
    const markdown = readFileSync(path.join(RepoRoot, file), 'utf8');
    const codeLines = new Set<number>();
    for (const b of fencedBlocks(file, markdown)) {
      const count = b.text === '' ? 0 : b.text.split('\n').length - 1;
      for (let l = b.line; l <= b.line + count + 1; l++) codeLines.add(l);
    }
    markdown.split('\n').forEach((text, i) => {
      if (codeLines.has(i + 1)) return;
      // Inline code spans are not links.
      const line = text.replace(/`[^`]*`/g, '');
      for (const m of line.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!;
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue;
        const [pathPart, anchor] = target.split('#', 2) as [string, string | undefined];
        const rel = pathPart === '' ? file : path.posix.normalize(path.posix.join(path.posix.dirname(file), pathPart));
        let exists = true;
        try {
          readFileSync(path.join(RepoRoot, rel));
        } catch {
          exists = false;
        }
        if (!exists) {
          broken.push({ file, line: i + 1, target, problem: `no file ${rel}` });
          continue;
        }
        if (anchor !== undefined && rel.endsWith('.md') && !anchors(rel).has(anchor)) {
          broken.push({ file, line: i + 1, target, problem: `no heading in ${rel} makes #${anchor}` });
        }
      }
    });
  }
  return broken;
}
