import { Controller, Get, Header, HttpCode, Logger, NotFoundException, Param, Post, Req, StreamableFile } from '@nestjs/common';
import { SkipTelemetry } from 'nestjs-posthog-telemetry';
import { createReadStream, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runDemoTraffic } from './demo-traffic.js';

const require = createRequire(import.meta.url);
/** `apps/demo/public`, beside `src` (the build copies it beside `dist/apps/demo/src`). */
const publicDir = fileURLToPath(new URL('../public/', import.meta.url));
const posthogDist = dirname(require.resolve('posthog-js/dist/array.no-external.js'));

const ASSETS: Record<string, string> = {
  'demo-page.js': join(publicDir, 'demo-page.js'),
  // posthog-js from node_modules, nothing from a CDN: the core without lazy-loaded
  // extensions, plus the extension that adds the tracing headers to fetch.
  'posthog.js': join(posthogDist, 'array.no-external.js'),
  'posthog-tracing-headers.js': join(posthogDist, 'tracing-headers.js'),
};

/** What the page needs to know: where posthog-js sends (the explorer under `npm start`), with which key. */
function pageConfig() {
  const host = process.env.POSTHOG_HOST?.trim();
  const key = process.env.POSTHOG_API_KEY?.trim();
  return { posthogHost: key && host ? host : null, posthogKey: key && host ? key : null };
}

/**
 * The demo's frontend: one page using the real posthog-js, whose clicks call
 * this API. Not API traffic itself, so it is left out of telemetry.
 */
@Controller()
@SkipTelemetry()
export class FrontendController {
  private readonly logger = new Logger('Demo');
  /** The page, read from disk on its first request. */
  private template?: string;

  @Get()
  @Header('Content-Type', 'text/html; charset=utf-8')
  @Header('Cache-Control', 'no-cache')
  page() {
    // `<` escaped so no configured value can close the script element.
    const config = JSON.stringify(pageConfig()).replace(/</g, '\\u003c');
    this.template ??= readFileSync(join(publicDir, 'index.html'), 'utf8');
    return this.template.replace('__DEMO_CONFIG__', () => config);
  }

  @Get('assets/:name')
  asset(@Param('name') name: string) {
    const path = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
    if (!path) throw new NotFoundException();
    return new StreamableFile(createReadStream(path), { type: 'text/javascript; charset=utf-8' });
  }

  /** Starts the mixed workload against this same API (the page's and the explorer's "Generate traffic" button). */
  @Post('demo/traffic')
  @HttpCode(202)
  traffic(@Req() request: { socket: { localPort?: number } }) {
    const { posthogHost, posthogKey } = pageConfig();
    const apiUrl = `http://127.0.0.1:${request.socket.localPort}`;
    runDemoTraffic({
      apiUrl,
      posthogHost: posthogHost ?? undefined,
      posthogKey: posthogKey ?? undefined,
      log: (line) => this.logger.log(line),
    }).catch((error: Error) => this.logger.warn(`Demo traffic failed: ${error.message}`));
    return { started: true };
  }
}
