import { isAbsolute, resolve } from 'node:path';

/** How the explorer runs; every field has an environment variable. */
export interface ExplorerSettings {
  /** `EXPLORER_PORT`, default 8010. 0 picks a free port (tests). */
  port: number;
  /** `EXPLORER_HOST`, default 127.0.0.1: the explorer has no authentication, so it stays on loopback. */
  host: string;
  /** `EXPLORER_DB`: the DuckDB file. Default `.explorer/events.duckdb` under the working directory (the project root under npm; git-ignored). `:memory:` keeps nothing. */
  dbPath: string;
  /** `EXPLORER_RETENTION_DAYS`, default 7: older events are deleted. */
  retentionDays: number;
  /** `EXPLORER_MAX_EVENTS`, default 200000: past it the oldest events are deleted. */
  maxEvents: number;
  /** `EXPLORER_MAX_BODY_BYTES`, default 5 MiB, after decompression: larger bodies get 413. */
  maxBodyBytes: number;
  /** `EXPLORER_DEMO_URL`: the demo API, for the "Generate traffic" button. Unset hides the button. */
  demoUrl?: string;
  /**
   * `EXPLORER_ALLOWED_HOSTS`, comma-separated: more `Host` names the page and the JSON API answer
   * (besides the bound address, `localhost`, `127.0.0.1` and `[::1]` on the explorer's port), e.g.
   * `explorer.test` or `host.docker.internal:8010`; `*` answers any (no DNS-rebinding guard).
   * Ingestion answers any Host.
   */
  allowedHosts?: string[];
}

export class ExplorerSettingsError extends Error {}

const DEFAULTS = { port: 8010, host: '127.0.0.1', retentionDays: 7, maxEvents: 200_000, maxBodyBytes: 5 * 1024 * 1024 };

function number(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min) throw new ExplorerSettingsError(`${name}=${raw.slice(0, 40)} is not a number ≥ ${min}.`);
  return value;
}

/**
 * Reads the settings from the environment. The explorer is a local tool with no
 * authentication: under NODE_ENV=production it refuses to start unless
 * EXPLORER_ALLOW_PRODUCTION=true says that is meant.
 */
export function readExplorerSettings(env: NodeJS.ProcessEnv = process.env): ExplorerSettings {
  if (env.NODE_ENV === 'production' && env.EXPLORER_ALLOW_PRODUCTION !== 'true') {
    throw new ExplorerSettingsError(
      'The journey explorer is a local development tool with no authentication; it does not start with NODE_ENV=production. ' +
        'Set EXPLORER_ALLOW_PRODUCTION=true if you mean it.',
    );
  }
  const db = env.EXPLORER_DB?.trim();
  return {
    port: number(env, 'EXPLORER_PORT', DEFAULTS.port, 0),
    host: env.EXPLORER_HOST?.trim() || DEFAULTS.host,
    dbPath: !db ? resolve('.explorer', 'events.duckdb') : db === ':memory:' || isAbsolute(db) ? db : resolve(db),
    retentionDays: number(env, 'EXPLORER_RETENTION_DAYS', DEFAULTS.retentionDays, 0),
    maxEvents: number(env, 'EXPLORER_MAX_EVENTS', DEFAULTS.maxEvents, 1),
    maxBodyBytes: number(env, 'EXPLORER_MAX_BODY_BYTES', DEFAULTS.maxBodyBytes, 1024),
    demoUrl: env.EXPLORER_DEMO_URL?.trim() || undefined,
    allowedHosts: (env.EXPLORER_ALLOWED_HOSTS ?? '')
      .split(',')
      .map((host) => host.trim().toLowerCase())
      .filter((host) => host !== ''),
  };
}
