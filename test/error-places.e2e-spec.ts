import {
  Controller,
  Get,
  Injectable,
  Module,
  UseGuards,
  UseInterceptors,
  UsePipes,
  Param,
  type CallHandler,
  type CanActivate,
  type INestApplication,
  type MiddlewareConsumer,
  type NestInterceptor,
  type NestMiddleware,
  type NestModule,
  type PipeTransform,
} from '@nestjs/common';
import { Observable, map, timer } from 'rxjs';
import request from 'supertest';
import { CaptureServer } from './support/capture-server.js';
import { SentryServer, sentryFor } from './support/sentry-server.js';
import { ADAPTERS, createTestApp, sendingTo } from './support/test-app.js';

/**
 * An error is reported once — one `api_error`, one `$exception`, one Sentry
 * event, all linked — wherever in Nest it was thrown. Each place throws its own
 * message: Sentry's Dedupe would drop identical consecutive events.
 */

@Injectable()
class FailingMiddleware implements NestMiddleware {
  use(): void {
    throw new Error('thrown in a middleware');
  }
}

class FailingGuard implements CanActivate {
  canActivate(): boolean {
    throw new Error('thrown in a guard');
  }
}

class FailingPipe implements PipeTransform {
  transform(): never {
    throw new Error('thrown in a pipe');
  }
}

class FailingBeforeInterceptor implements NestInterceptor {
  intercept(): Observable<unknown> {
    throw new Error('thrown in an interceptor before the handler');
  }
}

class FailingAfterInterceptor implements NestInterceptor {
  intercept(_context: unknown, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(
      map(() => {
        throw new Error('thrown in an interceptor after the handler');
      }),
    );
  }
}

@Controller('places')
class PlacesController {
  @Get('middleware')
  middleware() {
    return { unreachable: true };
  }

  @Get('guard')
  @UseGuards(FailingGuard)
  guard() {
    return { unreachable: true };
  }

  @Get('pipe')
  @UsePipes(FailingPipe)
  // eslint-disable-next-line @typescript-eslint/no-unused-vars -- the decorated parameter is what the pipe runs on
  pipe(@Param() _params: unknown) {
    return { unreachable: true };
  }

  @Get('sync')
  sync() {
    throw new Error('thrown in a handler');
  }

  @Get('async')
  async async() {
    await new Promise((resolve) => setTimeout(resolve, 5));
    throw new Error('thrown in an async handler');
  }

  @Get('before-interceptor')
  @UseInterceptors(FailingBeforeInterceptor)
  beforeInterceptor() {
    return { unreachable: true };
  }

  @Get('after-interceptor')
  @UseInterceptors(FailingAfterInterceptor)
  afterInterceptor() {
    return { ok: true };
  }

  @Get('stream')
  stream() {
    return timer(5).pipe(
      map(() => {
        throw new Error('thrown in an observable stream');
      }),
    );
  }
}

@Module({ controllers: [PlacesController] })
class PlacesModule implements NestModule {
  configure(consumer: MiddlewareConsumer) {
    consumer.apply(FailingMiddleware).forRoutes('places/middleware');
  }
}

// One Sentry server for the file: the Sentry client keeps the DSN of the first app.
let sentry: SentryServer;
beforeAll(async () => {
  sentry = await new SentryServer().start();
});
afterAll(async () => {
  await sentry.stop();
});

describe.each(ADAPTERS)('errors thrown anywhere, over %s', (adapter) => {
  let capture: CaptureServer;
  let app: INestApplication;

  beforeAll(async () => {
    capture = await new CaptureServer().start();
    app = await createTestApp(adapter, sendingTo(capture.url, { sentry: sentryFor(sentry) }), { imports: [PlacesModule] });
  });
  afterAll(async () => {
    await app.close();
    await capture.stop();
  });

  it.each([
    ['a middleware', '/places/middleware'],
    ['a guard', '/places/guard'],
    ['a pipe', '/places/pipe'],
    ['a handler', '/places/sync'],
    ['an async handler', '/places/async'],
    ['an interceptor, before the handler', '/places/before-interceptor'],
    ['an interceptor, after the handler', '/places/after-interceptor'],
    ['an observable stream', '/places/stream'],
  ])('thrown in %s: one api_error, one $exception, one Sentry event, linked', async (_place, path) => {
    const id = `place-${adapter}-${path.split('/').pop()}`;
    const res = await request(app.getHttpServer()).get(path).set('X-Request-ID', id);
    expect(res.status).toBe(500);
    expect(res.body).toEqual({ statusCode: 500, message: 'Internal server error' });
    await capture.waitFor(() =>
      ['api_request', 'api_error', '$exception'].every((name) => capture.forRequest(id).some((e) => e.event === name)),
    );
    await sentry.waitForRequests(id);
    await new Promise((done) => setTimeout(done, 200)); // a duplicate would arrive by now
    const events = capture.forRequest(id);
    const apiErrors = events.filter((e) => e.event === 'api_error');
    const exceptions = events.filter((e) => e.event === '$exception');
    const sentryEvents = sentry.eventsFor(id);
    expect(apiErrors).toHaveLength(1);
    expect(exceptions).toHaveLength(1);
    expect(sentryEvents).toHaveLength(1);
    expect(apiErrors[0].properties.$exception_uuid).toBe(exceptions[0].uuid);
    expect(apiErrors[0].properties.sentry_event_id).toBe(sentryEvents[0].event_id);
    expect(exceptions[0].properties.endpoint).toBe(apiErrors[0].properties.endpoint);
    expect(sentryEvents[0].tags?.endpoint).toBe(apiErrors[0].properties.endpoint);
  });
});
