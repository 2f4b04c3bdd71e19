import 'reflect-metadata';
import { startExplorer } from './create-explorer-app.js';
import { ExplorerSettingsError, readExplorerSettings } from './explorer.settings.js';

try {
  await startExplorer(readExplorerSettings());
} catch (error) {
  // A wrong setting or a port in use: one clear line, no stack.
  const message =
    error instanceof ExplorerSettingsError
      ? error.message
      : (error as NodeJS.ErrnoException).code === 'EADDRINUSE'
        ? `Port ${process.env.EXPLORER_PORT ?? 8010} is in use; set EXPLORER_PORT to another port.`
        : ((error as Error).stack ?? String(error));
  console.error(`Journey explorer did not start: ${message}`);
  process.exit(1);
}
