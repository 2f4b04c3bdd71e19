import {
  BeforeApplicationShutdown,
  Controller,
  Get,
  HttpCode,
  HttpException,
  Inject,
  NotFoundException,
  Param,
  Post,
  Query,
  Sse,
} from '@nestjs/common';
import { EventStore } from './event-store.js';
import { EXPLORER_SETTINGS } from './explorer.constants.js';
import { parseFilter, parseJourneyKey, parseLimit } from './explorer-filters.js';
import { ExplorerQueries } from './explorer-queries.js';
import type { ExplorerSettings } from './explorer.settings.js';
import { IssueQueries } from './issues.queries.js';
import { LiveEvents } from './live-events.js';
import { outboundLinks } from './outbound-links.js';
import { RequestSearchQueries } from './request-search.queries.js';

const text = (value: unknown): string | undefined => {
  const first = Array.isArray(value) ? value[0] : value;
  return typeof first === 'string' && first.trim() !== '' ? first.trim().slice(0, 500) : undefined;
};
const count = (name: string, value: unknown): number | undefined => {
  const raw = text(value);
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw)) throw new HttpException({ statusCode: 400, message: `${name} must be a whole number.` }, 400);
  return Number(raw);
};

/** The JSON API: the same answers the pages draw, for scripts and tests. */
@Controller('api')
export class ExplorerApiController implements BeforeApplicationShutdown {
  private readonly issueQueries: IssueQueries;
  private readonly search: RequestSearchQueries;
  private readonly live: LiveEvents;
  private readonly links = outboundLinks();

  constructor(
    private readonly queries: ExplorerQueries,
    @Inject(EXPLORER_SETTINGS) private readonly settings: ExplorerSettings,
    store: EventStore,
  ) {
    this.issueQueries = new IssueQueries(store);
    this.search = new RequestSearchQueries(store);
    this.live = new LiveEvents(store);
  }

  /** Open live streams end before the HTTP server closes, so an open page never holds shutdown up. */
  beforeApplicationShutdown() {
    this.live.close();
  }

  /** Server-Sent Events: `events` whenever new events were stored (the page reloads what it shows then). */
  @Sse('live')
  liveEvents() {
    return this.live.stream();
  }

  /** The Requests page: substring filters and search (`q`), sorting (`sort`, `dir`) and paging (`offset`, `limit`). */
  @Get('request-search')
  requestSearch(@Query() query: Record<string, unknown>) {
    return this.search.search(parseFilter(query), {
      q: text(query.q),
      sort: text(query.sort),
      dir: text(query.dir),
      offset: count('offset', query.offset),
      limit: count('limit', query.limit),
    });
  }

  /** Errors as issues, grouped by fingerprint (exception type and top in-app frame); 5xx and 4xx apart. */
  @Get('issues')
  issues(@Query() query: Record<string, unknown>) {
    return this.issueQueries.issues(parseFilter(query), text(query.q));
  }

  @Get('issues/:id')
  async issue(@Param('id') id: string, @Query() query: Record<string, unknown>) {
    const issue = await this.issueQueries.issue(id, parseFilter(query));
    if (!issue) throw new NotFoundException(`No issue ${id.slice(0, 40)} in this time range.`);
    return issue;
  }

  @Get('summary')
  async summary() {
    return { ...(await this.queries.summary()), demo_traffic: this.settings.demoUrl !== undefined, links: this.links };
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
    const response = await fetch(new URL('/demo/traffic', this.settings.demoUrl), {
      method: 'POST',
      signal: AbortSignal.timeout(5000),
    }).catch((error: Error) => {
      throw new HttpException(`The demo at ${this.settings.demoUrl} did not answer: ${error.message}`, 502);
    });
    if (!response.ok) throw new HttpException(`The demo answered ${response.status}.`, 502);
    return response.json();
  }
}
