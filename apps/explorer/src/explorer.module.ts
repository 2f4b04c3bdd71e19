import { DynamicModule, Logger, Module, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { EventStore } from './event-store.js';
import { ExplorerApiController } from './explorer-api.controller.js';
import { ExplorerQueries } from './explorer-queries.js';
import { ExplorerUiController } from './explorer-ui.controller.js';
import { EXPLORER_SETTINGS } from './explorer.constants.js';
import type { ExplorerSettings } from './explorer.settings.js';
import { IngestionController } from './ingestion.controller.js';

const PRUNE_EVERY_MS = 60_000;

/** The explorer: PostHog's ingestion API in, DuckDB in the middle, the JSON API and the page out. */
@Module({})
export class ExplorerModule implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('Explorer');
  private pruneTimer?: NodeJS.Timeout;

  constructor(private readonly store: EventStore) {}

  static forRoot(settings: ExplorerSettings): DynamicModule {
    return {
      module: ExplorerModule,
      controllers: [IngestionController, ExplorerApiController, ExplorerUiController],
      providers: [
        { provide: EXPLORER_SETTINGS, useValue: settings },
        {
          provide: EventStore,
          inject: [EXPLORER_SETTINGS],
          useFactory: (s: ExplorerSettings) => EventStore.open(s.dbPath, s),
        },
        { provide: ExplorerQueries, inject: [EventStore], useFactory: (store: EventStore) => new ExplorerQueries(store) },
      ],
    };
  }

  onModuleInit() {
    // Retention runs on its own clock too, so an idle explorer still forgets old events.
    this.pruneTimer = setInterval(() => {
      this.store.prune().catch((error: Error) => this.logger.warn(`Retention failed: ${error.message}`));
    }, PRUNE_EVERY_MS).unref();
  }

  /** After the HTTP server has stopped taking requests, so none meets a closed store. */
  async onApplicationShutdown() {
    clearInterval(this.pruneTimer);
    await this.store.close();
  }
}
