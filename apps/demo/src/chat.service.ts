import { Inject, Injectable } from '@nestjs/common';
import { POSTHOG_CLIENT, TelemetryService } from 'nestjs-posthog-telemetry';
import type { PostHog } from 'posthog-node';

/** A service deep inside a request: its events carry the request's id, user and session without being passed them. */
@Injectable()
export class ChatService {
  constructor(
    private readonly telemetry: TelemetryService,
    @Inject(POSTHOG_CLIENT) private readonly posthog: PostHog,
  ) {}

  async send(message: string): Promise<{ reply: string; request_id?: string }> {
    await new Promise((resolve) => setTimeout(resolve, 5));
    this.telemetry.capture('chat_message_sent', { message_length: message.length });
    // The posthog-node client itself works too, with the same correlation context.
    this.posthog.capture({ event: 'chat_reply_generated', properties: { model: 'demo-echo' } });
    return { reply: `echo: ${message}`, request_id: this.telemetry.getRequestContext()?.requestId };
  }
}
