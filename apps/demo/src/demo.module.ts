import { Module } from '@nestjs/common';
import { ChatService } from './chat.service.js';
import { DemoController, InternalController } from './demo.controllers.js';
import { FrontendController } from './frontend.controller.js';

/** The demo's routes and services, without telemetry: `AppModule` adds it, tests add it their way. */
@Module({
  controllers: [FrontendController, DemoController, InternalController],
  providers: [ChatService],
})
export class DemoModule {}
