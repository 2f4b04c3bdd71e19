import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { operationOf } from '../request/request-context.js';
import { routeTemplateOf } from './route-template.js';
import { skipGraphqlOperation } from '../graphql/graphql-hooks.js';
import { SKIP_TELEMETRY } from '../telemetry.constants.js';

/**
 * Where a request meets its route. A global guard that always lets the request
 * through: it is the first code that knows the handler, so it records the route
 * template and `@SkipTelemetry()` before the app's own guards can reject the
 * request. A guard rather than an interceptor because Nest runs an interceptor
 * through an rxjs pipeline on every request, which cost more than all the
 * module's own work together (see the README's overhead section).
 */
@Injectable()
export class TelemetryGuard implements CanActivate {
  constructor(private readonly reflector: Reflector) {}

  canActivate(context: ExecutionContext): boolean {
    if (context.getType<string>() === 'graphql') {
      // A GraphQL resolver (graphql/): its `@SkipTelemetry()` turns its operation's events off.
      if (this.skipped(context)) skipGraphqlOperation(context);
      return true;
    }
    if (context.getType() !== 'http') return true;
    try {
      const request = context.switchToHttp().getRequest();
      const operation = operationOf(request);
      if (!operation) return true;
      operation.matchRoute(routeTemplateOf(request), request);
      if (this.reflector.getAllAndOverride<boolean>(SKIP_TELEMETRY, [context.getHandler(), context.getClass()])) operation.optOut();
    } catch {
      /* never stand between a request and its route */
    }
    return true;
  }

  /** `@SkipTelemetry()` on the handler or its class. Never throws. */
  private skipped(context: ExecutionContext): boolean {
    try {
      return this.reflector.getAllAndOverride<boolean>(SKIP_TELEMETRY, [context.getHandler(), context.getClass()]) === true;
    } catch {
      return false;
    }
  }
}
