/**
 * A private copy of the built library (libs/telemetry/dist) for one bench run.
 * Other work in the same checkout may rebuild the library while the bench runs
 * (a rebuild first deletes dist/): with the copy, every cell of a run loads the
 * same code, and none fails on a half-written dist/. The copy sits under .tmp/
 * in the repository, so that its imports of posthog-node, @nestjs/* and the
 * rest resolve to the repository's node_modules.
 */
import { cp, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';

/** Files under `dir` and the newest modification time among them. */
async function fingerprint(dir: string): Promise<{ files: number; newest: number }> {
  let files = 0;
  let newest = 0;
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    files++;
    newest = Math.max(newest, (await stat(path.join(entry.parentPath, entry.name))).mtimeMs);
  }
  return { files, newest };
}

export interface LibrarySnapshot {
  /** file: URL of the copy's entry point, for `import()`. */
  entryUrl: string;
  remove(): Promise<void>;
}

/**
 * Copies `<root>/libs/telemetry/dist` once it has held still for a second (a build in progress writes for
 * several seconds) and did not change while it was copied.
 */
export async function snapshotLibrary(root: string): Promise<LibrarySnapshot> {
  const source = path.join(root, 'libs/telemetry/dist');
  const target = path.join(root, '.tmp', `bench-lib-${process.pid}`);
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      const before = await fingerprint(source);
      if (before.files > 0 && Date.now() - before.newest > 1000) {
        await rm(target, { recursive: true, force: true });
        await mkdir(target, { recursive: true });
        await cp(source, path.join(target, 'dist'), { recursive: true });
        const after = await fingerprint(source);
        if (after.files === before.files && after.newest === before.newest) break;
      }
    } catch {
      // dist/ removed or half-written by a build in progress: wait for it.
    }
    if (Date.now() > deadline) throw new Error(`${source} did not hold still for 2 minutes: is a build running? Run npm run build.`);
    await sleep(500);
  }
  // The compiled library is ESM.
  await writeFile(path.join(target, 'package.json'), '{ "type": "module" }\n');
  return {
    entryUrl: pathToFileURL(path.join(target, 'dist/index.js')).href,
    remove: () => rm(target, { recursive: true, force: true }),
  };
}
