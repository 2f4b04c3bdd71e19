import { Controller, Get, Header, NotFoundException, Param, StreamableFile } from '@nestjs/common';
import { createReadStream } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
/** `apps/explorer/public`, beside `src` (the build copies it beside `dist/apps/explorer/src`). */
const publicDir = fileURLToPath(new URL('../public/', import.meta.url));

/** A package's folder in node_modules (its main file sits in `dist/`). */
const packageDir = (name: string) => dirname(dirname(require.resolve(name)));

/** The files of the page, by name; nothing else on disk is reachable. */
function assets(): Record<string, { path: string; type: string }> {
  return {
    'explorer.css': { path: join(publicDir, 'explorer.css'), type: 'text/css; charset=utf-8' },
    // Chart.js's UMD build from node_modules: no CDN, no bundler.
    'chart.umd.min.js': { path: join(dirname(require.resolve('chart.js')), 'chart.umd.min.js'), type: 'text/javascript; charset=utf-8' },
    // Preact, its hooks and htm as the ES modules they ship (an import map in the page names them): no build step.
    'preact.mjs': { path: join(packageDir('preact'), 'dist', 'preact.module.js'), type: 'text/javascript; charset=utf-8' },
    'preact-hooks.mjs': { path: join(packageDir('preact'), 'hooks', 'dist', 'hooks.module.js'), type: 'text/javascript; charset=utf-8' },
    'htm.mjs': { path: join(packageDir('htm'), 'dist', 'htm.module.js'), type: 'text/javascript; charset=utf-8' },
    'explorer-app.mjs': { path: join(publicDir, 'explorer-app.mjs'), type: 'text/javascript; charset=utf-8' },
    'waterfall.mjs': { path: join(publicDir, 'waterfall.mjs'), type: 'text/javascript; charset=utf-8' },
  };
}

/** The web UI: one static page that draws the JSON API's answers. */
@Controller()
export class ExplorerUiController {
  private readonly files = assets();

  @Get()
  @Header('Content-Type', 'text/html; charset=utf-8')
  @Header('Cache-Control', 'no-cache')
  page() {
    return new StreamableFile(createReadStream(join(publicDir, 'index.html')));
  }

  @Get('assets/:name')
  asset(@Param('name') name: string) {
    const file = Object.hasOwn(this.files, name) ? this.files[name] : undefined;
    if (!file) throw new NotFoundException();
    return new StreamableFile(createReadStream(file.path), { type: file.type });
  }
}
