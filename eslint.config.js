// ESLint flat config: typescript-eslint's type-aware rules over src/, test/ and bench/.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/*
 * A folder a component; its index.ts is the only door in (STYLE.md). From a
 * file in src/a/, `./x.js` (its own folder) and `../b/index.js` (another
 * folder's door) are fine, `../b/x.js` is refused; a subfolder
 * (src/checkpoint/archive/) is a folder of its own, reached through
 * `./archive/index.js`, and from elsewhere only through its parent's door. The
 * files at the top of src/ (errors.ts, version.ts, clock.ts) belong to no folder. What
 * is allowed depends on how deep the importing file sits (`../x.js` is a top
 * file from src/a/, the parent folder's inner file from src/a/s/), so there is
 * one set of patterns a depth. Tests and benchmarks may reach inside.
 */
const DoorMessage = "import another folder's code through its index.ts (`../b/index.js`), the only door in (STYLE.md)";
/** Into a folder other than through its index.js: `./s/x.js`, `../b/x.js`, `../b/s/index.js`. */
const PastTheDoor = String.raw`^(?:\.{1,2}/)+[^./][^/]*/(?!index\.js$)`;
/** A file of the folder `ups` levels up (not src/ itself) other than its index.js: `../x.js` from src/a/s/. */
const AncestorFile = (ups) => String.raw`^(?:\.\./){${ups}}(?!index\.js$)[^/]+$`;
/** The refused import sources for a file `depth` folders below src/ (0: src/errors.ts, 1: src/a/x.ts, …). */
function doorPatterns(depth) {
  return [PastTheDoor, ...Array.from({ length: Math.max(0, depth - 1) }, (_, k) => AncestorFile(k + 1))];
}
const MaxDepth = 4;
export const doorRules = Array.from({ length: MaxDepth + 1 }, (_, depth) => ({
  files: [`src/${'*/'.repeat(depth)}*.ts`],
  rules: {
    'no-restricted-imports': ['error', { patterns: doorPatterns(depth).map((regex) => ({ regex, message: DoorMessage })) }],
    // The same for a lazy `await import('…')` with a literal path (esquery's regex may hold no `/`).
    'no-restricted-syntax': [
      'error',
      ...doorPatterns(depth).map((regex) => ({ selector: `ImportExpression > Literal.source[value=/${regex.replaceAll('/', String.raw`\x2F`)}/]`, message: DoorMessage })),
    ],
  },
}));

export default tseslint.config(
  { ignores: ['dist/', 'var/', 'node_modules/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['eslint.config.js'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      'no-console': 'error',
      // Fastify route handlers are async by contract (they return the body), awaiting or not.
      '@typescript-eslint/require-await': 'off',
    },
  },
  ...doorRules,
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      'no-console': 'off',
      '@typescript-eslint/no-unused-expressions': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
);
