import { Worker } from 'node:worker_threads';

/** What the sender hands the thread for one request to PostHog. */
export interface PostThreadOptions {
  url: string;
  /** Most of the one exchange (status line, headers, body), and of an idle socket. */
  timeoutMs: number;
  userAgent: string;
}

/**
 * The thread's script (CommonJS, evaluated: nothing of the module's to resolve in the thread). It answers
 * each `{ id, body, gzip }` with `{ id, status }` or `{ id, error }`; `abort` ends the exchanges in flight.
 * Its own keep-alive agent and one deflate stream kept for its life, reset after each body (zlib's state is
 * allocated once, not per batch).
 */
const SCRIPT = `
const { parentPort, workerData } = require('node:worker_threads');
const zlib = require('node:zlib');
const url = new URL(workerData.url);
const transport = require(url.protocol === 'https:' ? 'node:https' : 'node:http');
const agent = new transport.Agent({ keepAlive: true, maxSockets: 2 });
const timeoutMs = workerData.timeoutMs;
let aborting = new AbortController();
let deflate;
let gzipping = Promise.resolve();

function gzip(input) {
  const run = () => new Promise((resolve, reject) => {
    const stream = (deflate ??= zlib.createGzip({ level: zlib.constants.Z_BEST_SPEED }));
    const chunks = [];
    const onData = (chunk) => chunks.push(chunk);
    const onError = (error) => { stream.off('data', onData); deflate = undefined; stream.close(); reject(error); };
    stream.on('data', onData);
    stream.once('error', onError);
    stream.write(input);
    stream.flush(zlib.constants.Z_FINISH, () => {
      if (deflate !== stream) return;
      stream.off('data', onData);
      stream.off('error', onError);
      stream.reset();
      resolve(Buffer.concat(chunks));
    });
  });
  const next = gzipping.then(run, run);
  gzipping = next.catch(() => {});
  return next;
}

function post(body, compressed) {
  return new Promise((resolve, reject) => {
    const deadline = setTimeout(() => request.destroy(new Error('no complete answer within ' + timeoutMs + ' ms')), timeoutMs);
    const succeed = (status) => { clearTimeout(deadline); resolve(status); };
    const fail = (error) => { clearTimeout(deadline); reject(error); };
    const headers = { 'Content-Type': 'application/json', 'Content-Length': body.length, 'User-Agent': workerData.userAgent };
    if (compressed) headers['Content-Encoding'] = 'gzip';
    const request = transport.request(url, { method: 'POST', agent, signal: aborting.signal, timeout: timeoutMs, headers }, (response) => {
      response.resume();
      response.on('end', () => succeed(response.statusCode ?? 0));
      response.on('error', fail);
      response.on('aborted', () => fail(new Error('the answer was cut short')));
    });
    request.on('timeout', () => request.destroy(new Error('no answer within ' + timeoutMs + ' ms')));
    request.on('error', fail);
    request.on('close', () => fail(new Error('the connection closed before a complete answer')));
    request.end(body);
  });
}

parentPort.on('message', (message) => {
  if (message.type === 'abort') {
    aborting.abort();
    aborting = new AbortController();
    return;
  }
  if (message.type === 'close') {
    aborting.abort();
    agent.destroy();
    parentPort.close();
    return;
  }
  const json = Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength);
  (message.gzip ? gzip(json) : Promise.resolve(json))
    .then((body) => post(body, message.gzip))
    .then(
      (status) => parentPort.postMessage({ id: message.id, status }),
      (error) => parentPort.postMessage({ id: message.id, error: error instanceof Error ? error.message : String(error) }),
    );
});
`;

interface Waiting {
  resolve(status: number): void;
  reject(error: Error): void;
}

/**
 * Gzips and posts the sender's batches on a thread of its own. On the main thread a batch then costs one
 * message each way; Node's HTTP client and zlib's callbacks run elsewhere, and the app's own HTTP server
 * code (`OutgoingMessage`, streams) sees only the app's objects, so V8 keeps its call sites specialised
 * for them (a `ClientRequest` on the main thread makes them polymorphic). The thread holds the event loop
 * only while a request is in flight. `start` answers `undefined` where no thread can be made (a
 * permission model without worker threads); the sender then posts from the main thread.
 */
export class PostThread {
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 0;
  private dead?: Error;

  private constructor(private readonly worker: Worker) {
    worker.unref();
    // Instrumentations listen to every new thread (Sentry's child-process integration adds `error` and `online`
    // listeners once per `init`): a test suite that boots many apps in one process must not warn of a leak.
    worker.setMaxListeners(0);
    worker.on('message', (message: { id: number; status?: number; error?: string }) => this.answered(message));
    worker.on('error', (error) => this.failed(error));
    worker.on('exit', (code) => this.failed(new Error(`the sending thread exited (${code})`)));
  }

  static start(options: PostThreadOptions): PostThread | undefined {
    try {
      // No flags of the app's (an `--import` preload such as an APM's) and no stdin: a bare thread. Its heap is
      // bounded (it holds at most one batch and its request): its memory does not grow with an outage's length.
      // Past the bound it fails, and the sender posts from the main thread.
      return new PostThread(
        new Worker(SCRIPT, {
          eval: true,
          workerData: options,
          execArgv: [],
          stdin: false,
          name: 'posthog-sender',
          resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 16 },
        }),
      );
    } catch {
      return undefined;
    }
  }

  /** The thread can take requests (it has not failed or been closed). */
  get alive(): boolean {
    return this.dead === undefined;
  }

  /** Posts `json` (gzipped when `gzip`): PostHog's status, or the failure of the exchange. `json` is handed over. */
  post(json: Buffer, gzip: boolean): Promise<number> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise<number>((resolve, reject) => {
      if (this.waiting.size === 0) this.worker.ref();
      this.waiting.set(id, { resolve, reject });
      // A buffer with its memory to itself moves to the thread; a slice of Node's shared pool is copied.
      const own = json.byteOffset === 0 && json.byteLength === json.buffer.byteLength && json.buffer instanceof ArrayBuffer;
      this.worker.postMessage({ id, body: json, gzip }, own ? [json.buffer as ArrayBuffer] : []);
    });
  }

  /** Ends the exchanges in flight (they fail). */
  abort(): void {
    if (!this.dead) this.worker.postMessage({ type: 'abort' });
  }

  /** Stops the thread; requests in flight fail. */
  async close(): Promise<void> {
    if (this.dead) return;
    this.failed(new Error('the sender is shut down'));
    await this.worker.terminate();
  }

  private answered(message: { id: number; status?: number; error?: string }): void {
    const waiting = this.waiting.get(message.id);
    if (!waiting) return;
    this.settle(message.id);
    if (message.status !== undefined) waiting.resolve(message.status);
    else waiting.reject(new Error(message.error ?? 'the request failed'));
  }

  private failed(error: Error): void {
    this.dead ??= error;
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    this.worker.unref();
    for (const w of waiting) w.reject(error);
  }

  private settle(id: number): void {
    this.waiting.delete(id);
    if (this.waiting.size === 0) this.worker.unref();
  }
}
