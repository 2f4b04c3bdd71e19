import { Controller, Get, HttpCode, HttpException, Inject, Param, Post, Query, Req } from '@nestjs/common';
import { EventStore } from './event-store.js';
import { EXPLORER_SETTINGS } from './explorer.constants.js';
import type { ExplorerSettings } from './explorer.settings.js';
import { decodeIngestion, IngestionError } from './ingestion-decoder.js';

/**
 * PostHog's ingestion API, as much of it as the unmodified clients need:
 * posthog-node posts `/batch/`, posthog-js posts `/e/` (or `/i/v0/e/`), and
 * at start-up posthog-js asks for its remote config and flags. Routes match
 * with or without the trailing slash.
 */
@Controller()
export class IngestionController {
  constructor(
    private readonly store: EventStore,
    @Inject(EXPLORER_SETTINGS) private readonly settings: ExplorerSettings,
  ) {}

  @Post(['batch', 'e', 'i/v0/e', 'capture', 'track'])
  @HttpCode(200)
  capture(@Req() request: { body?: unknown; headers: Record<string, string | undefined> }, @Query() query: Record<string, unknown>) {
    return this.ingest(Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0), request.headers['content-type'], query);
  }

  /** posthog-js's last resort: an image request with the events base64 in `?data=`. */
  @Get(['e', 'i/v0/e', 'capture'])
  captureByGet(@Query() query: Record<string, unknown>) {
    return this.ingest(Buffer.alloc(0), undefined, query);
  }

  /** Person updates and session recordings are not stored; answering OK keeps the browser console clean. */
  @Post(['engage', 's', 'i/v0/s'])
  @HttpCode(200)
  ignored() {
    return { status: 1 };
  }

  /** posthog-js's remote config: nothing to load, no flags, gzip accepted. */
  @Get('array/:token/config')
  remoteConfig(@Param('token') token: string) {
    return {
      token,
      supportedCompression: ['gzip', 'gzip-js'],
      hasFeatureFlags: false,
      autocapture_opt_out: false,
      capturePerformance: false,
      heatmaps: false,
      surveys: false,
      sessionRecording: false,
      siteApps: [],
    };
  }

  /** The script form of the remote config: empty, so posthog-js falls back to the JSON one. */
  @Get('array/:token/config.js')
  remoteConfigScript() {
    return '';
  }

  /** Feature flags (`/flags/?v=2`, and the older `/decide/`): none. */
  @Post(['flags', 'decide'])
  @HttpCode(200)
  flags() {
    return { flags: {}, featureFlags: {}, featureFlagPayloads: {}, errorsWhileComputingFlags: false, quotaLimited: [] };
  }

  private async ingest(body: Buffer, contentType: string | undefined, query: Record<string, unknown>) {
    let decoded;
    try {
      decoded = decodeIngestion({ body, contentType, query, maxBytes: this.settings.maxBodyBytes, receivedAt: Date.now() });
    } catch (error) {
      if (error instanceof IngestionError) throw new HttpException({ status: 0, error: error.message }, error.tooLarge ? 413 : 400);
      throw error;
    }
    const { stored, duplicates } = await this.store.insert(decoded.events);
    return { status: 1, stored, duplicates, rejected: decoded.rejected };
  }
}
