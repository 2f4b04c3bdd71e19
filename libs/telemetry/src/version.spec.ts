import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { LIB_NAME, LIB_VERSION } from './version.js';

describe('version', () => {
  const pkg = JSON.parse(readFileSync(resolve(process.cwd(), 'libs/telemetry/package.json'), 'utf8')) as { name: string; version: string };

  it('LIB_VERSION equals the version in libs/telemetry/package.json', () => {
    expect(typeof pkg.version).toBe('string');
    expect(LIB_VERSION).toBe(pkg.version);
  });

  it('LIB_NAME equals the package name', () => {
    expect(LIB_NAME).toBe(pkg.name);
  });
});
