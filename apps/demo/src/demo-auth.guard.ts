import { CanActivate, ExecutionContext, Injectable, UnauthorizedException } from '@nestjs/common';

/**
 * A stand-in for a real auth guard (Passport, JWT): `Authorization: Bearer <user id>`
 * sets `request.user`, as a real guard would after checking a token.
 */
@Injectable()
export class DemoAuthGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest();
    const header = request.headers?.authorization;
    const match = typeof header === 'string' ? /^Bearer ([A-Za-z0-9_.@-]{1,64})$/.exec(header) : null;
    if (!match) throw new UnauthorizedException('Send Authorization: Bearer <user id>');
    const id = match[1];
    request.user = { id, email: id.includes('@') ? id : `${id}@example.com` };
    return true;
  }
}

/** Lets nobody in: shows a guard rejection (403) still producing `api_request` and `api_error`. */
@Injectable()
export class DenyAllGuard implements CanActivate {
  canActivate(): boolean {
    return false;
  }
}
