import { constants, createGzip, type Gzip, type ZlibReset } from 'node:zlib';

/**
 * Gzips request bodies, one after the other, through one deflate stream kept
 * for the sender's life and reset after each body. `zlib.gzip` per body sets up
 * and tears down a compressor each time (its state, its buffers: native memory
 * the allocator keeps, and page faults on the main thread); one stream allocates
 * its state once, and its work still runs off the main thread.
 */
export class GzipStream {
  // `reset` is on every deflate stream (Node's types leave it off `Gzip`).
  private stream?: Gzip & ZlibReset;
  /** The body being compressed: the next waits for it (one stream, one body at a time). */
  private last: Promise<unknown> = Promise.resolve();

  /** `input` as one gzip member. */
  compress(input: string | Buffer): Promise<Buffer> {
    const next = this.last.then(
      () => this.run(input),
      () => this.run(input),
    );
    this.last = next;
    return next;
  }

  /** Frees the compressor; a later body opens another. */
  close(): void {
    this.stream?.close();
    this.stream = undefined;
  }

  private run(input: string | Buffer): Promise<Buffer> {
    const stream = (this.stream ??= createGzip({ level: constants.Z_BEST_SPEED }) as Gzip & ZlibReset);
    return new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const onData = (chunk: Buffer) => chunks.push(chunk);
      const onError = (error: Error) => {
        done();
        // A stream that failed is not reused.
        if (this.stream === stream) this.close();
        reject(error);
      };
      const done = () => {
        stream.off('data', onData);
        stream.off('error', onError);
      };
      stream.on('data', onData);
      stream.once('error', onError);
      stream.write(input);
      // Z_FINISH ends the gzip member (trailer included); `reset` starts the next one on the same state.
      stream.flush(constants.Z_FINISH, () => {
        if (this.stream !== stream) return;
        done();
        stream.reset();
        resolve(Buffer.concat(chunks));
      });
    });
  }
}
