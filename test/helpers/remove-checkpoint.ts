/**
 * A primary's delete in another process: `node --import tsx remove-checkpoint.ts DIR ID` prints `ready`,
 * waits for a line on stdin, deletes checkpoint ID from the catalogue in DIR with Catalogue.remove (renamed
 * away, then shrunk a slice at a time, since this process has not opened it), prints `removed` and exits.
 */
import { Catalogue } from '../../src/checkpoint/index.js';
import { silentLogger } from '../../src/log/index.js';

const [dir, id] = process.argv.slice(2);
const catalogue = new Catalogue(dir!, silentLogger());
process.stdin.once('data', () => {
  catalogue.remove(Number(id)).then(
    () => {
      process.stdout.write('removed\n');
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`${(err as Error).message}\n`);
      process.exit(1);
    },
  );
});
process.stdout.write('ready\n');
