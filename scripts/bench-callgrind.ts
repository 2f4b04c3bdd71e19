/**
 * valgrind/callgrind plumbing for the benchmark: the command line that runs a
 * Node.js child under callgrind with instrumentation off, `callgrind_control`
 * to switch it on and off and to dump, and the per-thread dump files read back
 * into instruction counts.
 */
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * valgrind's arguments before the guest command. `--instr-atstart=no`: start-up and warm-up run without
 * instrumentation (several times faster) and count nothing; `--separate-threads=yes`: one dump file per
 * thread, so the main thread is told from V8's and libuv's helper threads and from worker threads;
 * `--smc-check=all-non-file`: V8 writes and rewrites machine code in anonymous memory, which valgrind must
 * re-translate when it changes (the amd64 default, spelled out so that it holds on any build).
 * `--trace-children` stays off: the app starts no process of its own.
 */
export function callgrindArgs(outDir: string): string[] {
  return [
    '--tool=callgrind',
    '--instr-atstart=no',
    '--separate-threads=yes',
    '--smc-check=all-non-file',
    '--trace-children=no',
    `--callgrind-out-file=${path.join(outDir, 'callgrind.out.%p')}`,
    `--log-file=${path.join(outDir, 'valgrind.log')}`,
  ];
}

/** Runs `callgrind_control <args> <pid>`; fails when the tool does not confirm. */
export function callgrindControl(pid: number, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('callgrind_control', [...args, String(pid)], { timeout: 120_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`callgrind_control ${args.join(' ')} ${pid}: ${error.message} ${stderr}`));
      else if (!/OK\./.test(stdout)) reject(new Error(`callgrind_control ${args.join(' ')} ${pid} did not confirm: ${stdout} ${stderr}`));
      else resolve(stdout);
    });
  });
}

export interface ThreadInstructions {
  /** valgrind's thread number: 1 is the main thread. */
  thread: number;
  instructions: number;
}

/**
 * The instructions of each thread in the dump files of `pid` in `outDir` (`callgrind.out.<pid>.<dump>-<thread>`),
 * summed over dumps. The `totals:` line of a file is the whole of its thread's cost; `summary:` stands in when
 * a file has no `totals:`.
 */
export async function readThreadInstructions(outDir: string, pid: number): Promise<ThreadInstructions[]> {
  const pattern = new RegExp(`^callgrind\\.out\\.${pid}(?:\\.\\d+)?-(\\d+)$`);
  const byThread = new Map<number, number>();
  for (const name of await readdir(outDir)) {
    const match = pattern.exec(name);
    if (!match) continue;
    const text = await readFile(path.join(outDir, name), 'utf8');
    const totals = /^totals:\s*(\d+)/m.exec(text) ?? /^summary:\s*(\d+)/m.exec(text);
    if (!totals) throw new Error(`${name}: no totals: or summary: line`);
    const thread = Number(match[1]);
    byThread.set(thread, (byThread.get(thread) ?? 0) + Number(totals[1]));
  }
  return [...byThread].sort(([a], [b]) => a - b).map(([thread, instructions]) => ({ thread, instructions }));
}
