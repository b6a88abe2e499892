/**
 * The lint rule that keeps every cross-folder import going through the
 * folder's index.ts (STYLE.md: "its `index.ts` is the only door in"), run
 * through ESLint's Node API on snippets placed under src/. Only the rule's
 * own blocks of eslint.config.js are loaded, with the TypeScript parser and
 * no type information: the snippets are not files of the project, and a
 * type-aware run would take a whole program's build.
 */
import { expect } from 'chai';
import { ESLint, type Linter } from 'eslint';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import tseslint from 'typescript-eslint';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('lint: a folder is entered only through its index.ts', function () {
  let eslint: ESLint;
  let config: { default: Linter.Config[]; doorRules: Linter.Config[] };

  before(async function () {
    config = (await import(pathToFileURL(path.join(root, 'eslint.config.js')).href)) as typeof config;
    eslint = new ESLint({
      cwd: root,
      overrideConfigFile: true,
      overrideConfig: [{ files: ['**/*.ts'], languageOptions: { parser: tseslint.parser } }, ...config.doorRules],
    });
  });

  /** The door rule's complaints about `code` as the file `file` (relative to the repository). */
  async function refusals(file: string, code: string): Promise<string[]> {
    const [result] = await eslint.lintText(`${code}\nexport {};\n`, { filePath: path.join(root, file) });
    expect(result!.messages.filter((m) => m.fatal)).to.deep.equal([]);
    return result!.messages.filter((m) => m.ruleId === 'no-restricted-imports' || m.ruleId === 'no-restricted-syntax').map((m) => m.message);
  }

  it('is part of the configuration `npx eslint .` runs', function () {
    expect(config.doorRules).to.not.be.empty;
    for (const block of config.doorRules) expect(config.default).to.deep.include(block);
  });

  it("refuses another folder's inner file: ../journal/journal-writer.js from src/api/x.ts", async function () {
    const messages = await refusals('src/api/x.ts', "import { JournalWriter } from '../journal/journal-writer.js';");
    expect(messages).to.have.length(1);
    expect(messages[0]).to.include('../journal/journal-writer.js').and.include('the only door in');
  });

  it("takes another folder's door: ../journal/index.js from src/api/x.ts", async function () {
    expect(await refusals('src/api/x.ts', "import { JournalWriter } from '../journal/index.js';")).to.deep.equal([]);
  });

  it('takes files of the same folder and of the top of src/, and packages', async function () {
    const code = ["import { a } from './json-body.js';", "import { b } from '../errors.js';", "import { c } from 'node:fs';", "import { d } from 'ws';"].join('\n');
    expect(await refusals('src/api/x.ts', code)).to.deep.equal([]);
  });

  it('refuses type imports and re-exports past the door too', async function () {
    const code = ["import type { Json } from '../store/json.js';", "export { Store } from '../store/store.js';", "export * from '../config/defaults.js';"].join('\n');
    expect(await refusals('src/api/x.ts', code)).to.have.length(3);
  });

  it("treats a subfolder as a folder of its own: reached through ./archive/index.js, never from elsewhere", async function () {
    expect(await refusals('src/checkpoint/x.ts', "import { a } from './archive/index.js';")).to.deep.equal([]);
    expect(await refusals('src/checkpoint/x.ts', "import { a } from './archive/manifest.js';")).to.have.length(1);
    expect(await refusals('src/cli/x.ts', "import { a } from '../checkpoint/archive/index.js';")).to.have.length(1);
  });

  it("lets a subfolder's files use their own folder, the top of src/ and other doors, not the parent's inner files", async function () {
    const fine = ["import { a } from './manifest.js';", "import { b } from '../../errors.js';", "import { c } from '../../config/index.js';", "import { d } from '../index.js';"].join('\n');
    expect(await refusals('src/checkpoint/archive/x.ts', fine)).to.deep.equal([]);
    const refused = ["import { a } from '../catalogue.js';", "import { b } from '../../config/defaults.js';"].join('\n');
    expect(await refusals('src/checkpoint/archive/x.ts', refused)).to.have.length(2);
  });

  it('applies to a lazy import() as well: the same folder and doors pass, an inner file does not', async function () {
    const fine = ["const { runCommand } = await import('./run.js');", "const { Roles } = await import('../api/index.js');"].join('\n');
    expect(await refusals('src/cli/x.ts', fine)).to.deep.equal([]);
    expect(await refusals('src/cli/x.ts', "const { buildServer } = await import('../api/server.js');")).to.have.length(1);
  });

  it('leaves tests free to reach inside', async function () {
    expect(await refusals('test/unit/x.test.ts', "import { JournalWriter } from '../../src/journal/journal-writer.js';")).to.deep.equal([]);
  });
});
