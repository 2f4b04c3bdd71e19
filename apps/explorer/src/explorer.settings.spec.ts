import { resolve } from 'node:path';
import { ExplorerSettingsError, readExplorerSettings } from './explorer.settings.js';

describe('readExplorerSettings', () => {
  it('defaults to 127.0.0.1:8010 and a git-ignored file under the working directory', () => {
    expect(readExplorerSettings({})).toEqual({
      port: 8010,
      host: '127.0.0.1',
      dbPath: resolve('.explorer', 'events.duckdb'),
      retentionDays: 7,
      maxEvents: 200_000,
      maxBodyBytes: 5 * 1024 * 1024,
      demoUrl: undefined,
      allowedHosts: [],
    });
  });

  it('reads every setting from the environment', () => {
    const settings = readExplorerSettings({
      EXPLORER_PORT: '9000',
      EXPLORER_HOST: '0.0.0.0',
      EXPLORER_DB: 'data/x.duckdb',
      EXPLORER_RETENTION_DAYS: '2',
      EXPLORER_MAX_EVENTS: '50',
      EXPLORER_MAX_BODY_BYTES: '2048',
      EXPLORER_DEMO_URL: 'http://127.0.0.1:3000',
      EXPLORER_ALLOWED_HOSTS: 'Explorer.test, host.docker.internal:8010,',
    });
    expect(settings).toEqual({
      port: 9000,
      host: '0.0.0.0',
      dbPath: resolve('data/x.duckdb'),
      retentionDays: 2,
      maxEvents: 50,
      maxBodyBytes: 2048,
      demoUrl: 'http://127.0.0.1:3000',
      allowedHosts: ['explorer.test', 'host.docker.internal:8010'],
    });
    expect(readExplorerSettings({ EXPLORER_DB: ':memory:' }).dbPath).toBe(':memory:');
  });

  it('refuses to start under NODE_ENV=production unless EXPLORER_ALLOW_PRODUCTION=true', () => {
    expect(() => readExplorerSettings({ NODE_ENV: 'production' })).toThrow(/EXPLORER_ALLOW_PRODUCTION=true/);
    expect(() => readExplorerSettings({ NODE_ENV: 'production', EXPLORER_ALLOW_PRODUCTION: 'yes' })).toThrow(ExplorerSettingsError);
    expect(readExplorerSettings({ NODE_ENV: 'production', EXPLORER_ALLOW_PRODUCTION: 'true' }).port).toBe(8010);
  });

  it.each([
    ['EXPLORER_PORT', 'eighty'],
    ['EXPLORER_PORT', '-1'],
    ['EXPLORER_MAX_EVENTS', '0'],
    ['EXPLORER_MAX_BODY_BYTES', '10'],
    ['EXPLORER_RETENTION_DAYS', 'NaN'],
  ])('names the setting when %s=%s is wrong', (name, value) => {
    expect(() => readExplorerSettings({ [name]: value })).toThrow(new RegExp(`^${name}=`));
  });
});
