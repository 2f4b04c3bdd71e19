import { randomUUID } from 'node:crypto';
import {
  BadRequestException,
  Body,
  CallHandler,
  Controller,
  ExecutionContext,
  Get,
  HttpCode,
  Injectable,
  NestInterceptor,
  NotFoundException,
  Param,
  ParseIntPipe,
  Post,
  Query,
  Req,
  UseGuards,
  UseInterceptors,
} from '@nestjs/common';
import { SkipTelemetry } from 'nestjs-posthog-telemetry';
import { Observable, map } from 'rxjs';
import { ChatService } from './chat.service.js';
import { DemoAuthGuard, DenyAllGuard } from './demo-auth.guard.js';

const ITEMS = new Map([
  [1, { id: 1, name: 'Popcorn' }],
  [2, { id: 2, name: 'Soda' }],
]);

/** Errors shaped like the ones real providers and sockets throw, one per category. */
function providerError(message: string, extra: Record<string, unknown>): Error {
  return Object.assign(new Error(message), extra);
}

/** Fails after the handler ran: shows errors thrown by interceptors are reported once too. */
@Injectable()
class FailingInterceptor implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(
      map(() => {
        throw new Error('interceptor failed after the handler');
      }),
    );
  }
}

@Controller()
export class DemoController {
  constructor(private readonly chat: ChatService) {}

  /** A stand-in sign-up: answers the new user's id, which the demo's bearer guard accepts. */
  @Post('auth/signup')
  @HttpCode(201)
  signup(@Body() body: { email?: unknown }) {
    if (typeof body?.email !== 'string' || !/^[^@\s]{1,64}@[^@\s]{1,190}$/.test(body.email))
      throw new BadRequestException('a valid email is required');
    return { user_id: `user_${randomUUID().slice(0, 8)}` };
  }

  @Get('items/:id')
  item(@Param('id', ParseIntPipe) id: number) {
    const item = ITEMS.get(id);
    if (!item) throw new NotFoundException(`Item ${id} not found`);
    return item;
  }

  @Post('items')
  @HttpCode(201)
  create(@Body() body: { name?: unknown }) {
    if (typeof body?.name !== 'string' || body.name === '') throw new BadRequestException('name is required');
    return { id: ITEMS.size + 1, name: body.name };
  }

  @Post('chat')
  chatSend(@Body() body: { message?: unknown }) {
    return this.chat.send(typeof body?.message === 'string' ? body.message : '');
  }

  @Get('me')
  @UseGuards(DemoAuthGuard)
  me(@Req() request: { user: unknown }) {
    return request.user;
  }

  @Get('admin')
  @UseGuards(DenyAllGuard)
  admin() {
    return { secret: 'never reached' };
  }

  @Get('slow')
  async slow(@Query('ms') ms?: string) {
    const asked = ms === undefined || ms === '' ? 1000 : Number(ms);
    const wait = Number.isFinite(asked) ? Math.min(Math.max(asked, 0), 10_000) : 1000;
    await new Promise((resolve) => setTimeout(resolve, wait));
    return { waited_ms: wait };
  }

  @Get('errors/connection')
  connectionError() {
    throw providerError('socket hang up', { code: 'ECONNRESET' });
  }

  @Get('errors/content-filter')
  async contentFilterError() {
    await Promise.resolve();
    throw providerError("The response was filtered due to the prompt triggering Azure OpenAI's content management policy.", {
      status: 400,
      code: 'content_filter',
    });
  }

  @Get('errors/quota')
  quotaError() {
    throw providerError('You exceeded your current quota, please check your plan and billing details.', {
      status: 429,
      code: 'insufficient_quota',
    });
  }

  @Get('errors/application')
  applicationError() {
    const order: { total?: { amount: number } } = {};
    // A bug on purpose: reading a field of the missing total throws a TypeError.
    const total = order.total as { amount: number };
    return total.amount;
  }

  @Get('errors/not-an-error')
  notAnError() {
    throw 'a plain string was thrown';
  }

  @Get('errors/interceptor')
  @UseInterceptors(FailingInterceptor)
  interceptorError() {
    return { ok: true };
  }

  @Get('health')
  health() {
    return { status: 'ok' };
  }

  @Get('version')
  @SkipTelemetry()
  version() {
    return { version: '0.1.0' };
  }
}

/** A whole controller opted out of telemetry. */
@Controller('internal')
@SkipTelemetry()
export class InternalController {
  @Get('stats')
  stats() {
    return { uptime_s: Math.round(process.uptime()) };
  }

  @Get('boom')
  boom() {
    throw new Error('internal failure that telemetry must not report');
  }
}
