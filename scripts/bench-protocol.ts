/**
 * What scripts/bench.ts and the app it starts (scripts/bench-app.ts) share: the
 * modes and adapters, the app's configuration and their IPC messages. A file of
 * its own, so that the bench imports no app code.
 */
export const BENCH_MODES = ['bare', 'module', 'posthog-interceptor', 'observe'] as const;
export type BenchMode = (typeof BENCH_MODES)[number];
export const BENCH_ADAPTERS = ['express', 'fastify'] as const;
export type BenchAdapter = (typeof BENCH_ADAPTERS)[number];

export interface BenchAppConfig {
  mode: BenchMode;
  adapter: BenchAdapter;
  /** The loopback PostHog capture server (module, posthog-interceptor). */
  captureUrl: string;
  /** The loopback collector @nestjs/observe posts to (observe). */
  collectorUrl: string;
  /** `properties.environment` of the events (observe: its `serviceId`). */
  environment: string;
  /** file: URL of the library's entry point (the bench's copy of libs/telemetry/dist). */
  libraryUrl: string;
}

/** Bench → app. */
export type BenchRequest = { type: 'round-start' } | { type: 'round-end' } | { type: 'shutdown' };
/** App → bench. */
export type BenchReply =
  | { type: 'ready'; port: number }
  | { type: 'round-started' }
  /** `busyMs`: from the round's start to the route's last answer in it. */
  | { type: 'round-ended'; cpuMicros: number; handled: number; busyMs: number }
  | { type: 'closed'; handled: number };
