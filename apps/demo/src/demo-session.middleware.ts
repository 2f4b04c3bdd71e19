import { Injectable, type NestMiddleware } from '@nestjs/common';

/**
 * A stand-in for an app's session or JWT middleware: a signed-in browser's calls
 * carry `Authorization: Bearer <user id>`, and every route then knows its user
 * (`request.user`), as behind a real auth layer. It rejects nothing: routes
 * that require a user have `DemoAuthGuard`.
 */
@Injectable()
export class DemoSessionMiddleware implements NestMiddleware {
  use(request: { headers?: Record<string, unknown>; user?: unknown }, _response: unknown, next: () => void): void {
    const header = request.headers?.authorization;
    const match = typeof header === 'string' ? /^Bearer ([A-Za-z0-9_.@-]{1,64})$/.exec(header) : null;
    if (match && request.user === undefined) {
      const id = match[1];
      request.user = { id, email: id.includes('@') ? id : `${id}@example.com` };
    }
    next();
  }
}
