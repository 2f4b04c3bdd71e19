import { CallHandler, ExecutionContext, Inject, Injectable, NestInterceptor } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { PostHog } from 'posthog-node';
import { Observable, catchError, throwError } from 'rxjs';
import { PostHogTelemetryService } from './posthog-telemetry.service.js';
import { posthogContextOf } from './posthog-context.js';
import { stateOfRequest } from './request-context.js';
import { routeTemplateOf } from './route-template.js';
import { POSTHOG_CLIENT, SKIP_TELEMETRY, TELEMETRY_OPTIONS } from './telemetry.constants.js';
import type { ResolvedTelemetryOptions } from './telemetry.options.js';

/**
 * Where a request meets its route, after every guard: records the route
 * template, `@SkipTelemetry()`, and the user the auth guards found, then runs
 * the handler in a posthog-node context that carries that user. Errors are only
 * noted here (the response is the exception filter's business).
 */
@Injectable()
export class TelemetryInterceptor implements NestInterceptor {
  constructor(
    private readonly reflector: Reflector,
    private readonly telemetry: PostHogTelemetryService,
    @Inject(POSTHOG_CLIENT) private readonly posthog: PostHog,
    @Inject(TELEMETRY_OPTIONS) private readonly options: ResolvedTelemetryOptions,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    const request = context.switchToHttp().getRequest();
    const state = stateOfRequest(request);
    if (!state) return next.handle();
    try {
      state.adapterRequest = request;
      state.endpoint = routeTemplateOf(request, state.entryRoute) ?? state.endpoint;
      if (this.reflector.getAllAndOverride<boolean>(SKIP_TELEMETRY, [context.getHandler(), context.getClass()])) {
        state.skip = true;
      }
      this.telemetry.resolveUser(state);
    } catch {
      return next.handle();
    }
    const contextData = posthogContextOf(state, this.options.environment);
    return new Observable((subscriber) =>
      this.posthog.withContext(
        contextData,
        () =>
          next
            .handle()
            .pipe(
              catchError((error) => {
                state.noteError(error);
                return throwError(() => error);
              }),
            )
            .subscribe(subscriber),
        { fresh: true },
      ),
    );
  }
}
