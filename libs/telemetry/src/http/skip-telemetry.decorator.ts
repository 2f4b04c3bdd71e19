import { SetMetadata } from '@nestjs/common';
import { SKIP_TELEMETRY } from '../telemetry.constants.js';

/**
 * No telemetry events for this handler, or for every handler of this controller.
 * The request still gets its `X-Request-ID`.
 */
export const SkipTelemetry = (skip = true) => SetMetadata(SKIP_TELEMETRY, skip);
