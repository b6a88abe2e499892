/**
 * Where everything lives inside the FileVault (docs/ARCHITECTURE.md "FileVault layout").
 * Only this file knows the folder names.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';

/** The FileVault folders of one installation. */
export class VaultPaths {
  /** Absolute path of the FileVault root. */
  constructor(readonly root: string) {}

  /** Journal files. */
  get journal(): string {
    return path.join(this.root, 'journal');
  }

  /** Published checkpoints and their id sequence. */
  get checkpoint(): string {
    return path.join(this.root, 'checkpoint');
  }

  /** Lease and epoch claims. */
  get failover(): string {
    return path.join(this.root, 'failover');
  }

  /** Space documents (not part of checkpoints). */
  get space(): string {
    return path.join(this.root, 'space');
  }

  /** Create every folder that is missing. */
  async ensure(): Promise<void> {
    for (const dir of [this.journal, this.checkpoint, this.failover, this.space]) {
      await fs.mkdir(dir, { recursive: true });
    }
  }
}
