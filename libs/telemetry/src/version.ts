/** Sent as `$lib_version`; a unit test keeps it equal to package.json. */
export const LIB_VERSION = '0.1.0';
export const LIB_NAME = 'nestjs-posthog-telemetry';
