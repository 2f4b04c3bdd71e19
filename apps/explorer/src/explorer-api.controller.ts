import { Controller, Get, HttpCode, HttpException, Inject, NotFoundException, Post, Query } from '@nestjs/common';
import { EXPLORER_SETTINGS } from './explorer.constants.js';
import { parseFilter, parseJourneyKey, parseLimit } from './explorer-filters.js';
import { ExplorerQueries } from './explorer-queries.js';
import type { ExplorerSettings } from './explorer.settings.js';

/** The JSON API: the same answers the pages draw, for scripts and tests. */
@Controller('api')
export class ExplorerApiController {
  constructor(
    private readonly queries: ExplorerQueries,
    @Inject(EXPLORER_SETTINGS) private readonly settings: ExplorerSettings,
  ) {}

  @Get('summary')
  async summary() {
    return { ...(await this.queries.summary()), demo_traffic: this.settings.demoUrl !== undefined };
  }

  @Get('requests')
  requests(@Query() query: Record<string, unknown>) {
    return this.queries.requests(parseFilter(query), parseLimit(query.limit));
  }

  @Get('journey')
  journey(@Query() query: Record<string, unknown>) {
    return this.queries.journey(parseJourneyKey(query), parseLimit(query.limit));
  }

  @Get('errors')
  errors(@Query() query: Record<string, unknown>) {
    return this.queries.errors(parseFilter(query));
  }

  @Get('performance')
  performance(@Query() query: Record<string, unknown>) {
    return this.queries.performance(parseFilter(query));
  }

  /** The page's "Generate traffic" button: asks the demo (EXPLORER_DEMO_URL) to run its workload. */
  @Post('demo-traffic')
  @HttpCode(202)
  async demoTraffic() {
    if (!this.settings.demoUrl) throw new NotFoundException('No demo is connected (EXPLORER_DEMO_URL is not set).');
    const response = await fetch(new URL('/demo/traffic', this.settings.demoUrl), { method: 'POST', signal: AbortSignal.timeout(5000) }).catch(
      (error: Error) => {
        throw new HttpException(`The demo at ${this.settings.demoUrl} did not answer: ${error.message}`, 502);
      },
    );
    if (!response.ok) throw new HttpException(`The demo answered ${response.status}.`, 502);
    return response.json();
  }
}
