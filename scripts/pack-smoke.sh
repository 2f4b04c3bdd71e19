#!/usr/bin/env bash
# Package smoke test: packs libs/telemetry exactly as `npm publish` would, installs
# the tarball (plus its peers, without the optional @sentry/node) into a fresh
# ESM Nest 12 app in a temp dir, type-checks a small app against the shipped
# types (module NodeNext), then runs it against a capture server on 127.0.0.1 and
# checks the events PostHog would receive.
#
# Run after `npm run build:lib` (npm test does). Ends with
# `package smoke: N passed, M failed`; exits non-zero on any failure.
# Leaves nothing behind: the temp dir is removed and no process outlives it.
#
# Environment: PACK_SMOKE_APP_TIMEOUT (seconds the app may run, default 60);
# PACK_SMOKE_KEEP=1 keeps the temp dir (its path is printed) for debugging.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LIB="$ROOT/libs/telemetry"
APP_TIMEOUT_S="${PACK_SMOKE_APP_TIMEOUT:-60}"
START_S=$SECONDS

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "  ok   - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "  FAIL - $*"; }

WORK=""
CHILD_PID=""
cleanup() {
  if [[ -n "$CHILD_PID" ]] && kill -0 "$CHILD_PID" 2>/dev/null; then
    kill "$CHILD_PID" 2>/dev/null
    # npm can take a while to act on SIGTERM; the temp dir is going away anyway.
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$CHILD_PID" 2>/dev/null || break; sleep 0.3; done
    kill -KILL "$CHILD_PID" 2>/dev/null
    wait "$CHILD_PID" 2>/dev/null
  fi
  if [[ -n "$WORK" && -d "$WORK" ]]; then
    if [[ -z "${PACK_SMOKE_KEEP:-}" ]]; then rm -rf "$WORK"; else echo "pack-smoke: kept $WORK"; fi
  fi
}
trap cleanup EXIT
# fd 3: the script's own stdout, for messages printed while a step's output is redirected.
exec 3>&1
trap 'echo "pack-smoke: interrupted" >&3; exit 130' INT TERM

# Prints the summary line and exits: the last line of every run.
finish() {
  echo "(took $((SECONDS - START_S)) s)"
  echo "package smoke: $PASSED passed, $FAILED failed"
  if [[ $FAILED -eq 0 ]]; then exit 0; else exit 1; fi
}

# Runs a command as a child the cleanup can stop: an interrupted run stops at
# once rather than after the current step, and leaves no process behind.
run_child() {
  "$@" &
  CHILD_PID=$!
  wait "$CHILD_PID"
  local rc=$?
  CHILD_PID=""
  return $rc
}

# Runs a command quietly; on failure shows its output and aborts the smoke test.
run_or_abort() {
  local what="$1"
  shift
  local log="$WORK/step.log"
  if run_child "$@" >"$log" 2>&1; then
    pass "$what"
  else
    fail "$what (exit $?): $*"
    sed 's/^/      | /' "$log" | tail -n 60
    finish
  fi
}

echo "== package smoke test: nestjs-posthog-telemetry"

if [[ ! -f "$LIB/dist/index.js" || ! -f "$LIB/dist/index.d.ts" ]]; then
  fail "libs/telemetry/dist is built (run \`npm run build:lib\` first)"
  finish
fi
# A dist older than its sources would make this test check stale code.
newest_src="$(find "$LIB/src" -name '*.ts' ! -name '*.spec.ts' -newer "$LIB/dist/index.js" -print -quit)"
if [[ -n "$newest_src" ]]; then
  fail "libs/telemetry/dist is up to date (${newest_src#"$ROOT"/} is newer than dist/index.js; run \`npm run build:lib\`)"
  finish
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/pack-smoke.XXXXXX")"
mkdir -p "$WORK/pack" "$WORK/app"

# ---------------------------------------------------------------- 1. pack
echo "-- npm pack"
cd "$ROOT" || exit 1
run_or_abort "npm pack ./libs/telemetry" npm pack ./libs/telemetry --pack-destination "$WORK/pack" --silent
shopt -s nullglob
tarballs=("$WORK"/pack/*.tgz)
shopt -u nullglob
if [[ ${#tarballs[@]} -ne 1 ]]; then
  fail "npm pack produced exactly one tarball (found ${#tarballs[@]})"
  finish
fi
TARBALL="${tarballs[0]}"
echo "   tarball: $(basename "$TARBALL") ($(du -k "$TARBALL" | cut -f1) KiB)"

entries="$(tar tzf "$TARBALL")"
entry_count="$(printf '%s\n' "$entries" | grep -c .)"
unexpected="$(printf '%s\n' "$entries" | grep -Ev '^package/(dist/.+|package\.json|README\.md)$')"
if [[ -z "$unexpected" ]]; then
  pass "tarball holds only dist/, package.json and README.md ($entry_count files)"
else
  fail "tarball holds only dist/, package.json and README.md; also found:"
  printf '%s\n' "$unexpected" | sed 's/^/      | /' | head -n 20
fi
leaked="$(printf '%s\n' "$entries" | grep -E '(^package/src/|/src/|\.spec\.|\.e2e-spec\.|\.test\.|\.tsbuildinfo$)')"
if [[ -z "$leaked" ]]; then
  pass "tarball has no src/, spec/test files or build info"
else
  fail "tarball has no src/, spec/test files or build info; found:"
  printf '%s\n' "$leaked" | sed 's/^/      | /' | head -n 20
fi
# tsc never deletes outputs: a dist file whose source is gone would ship stale code.
orphans=""
while IFS= read -r js; do
  [[ -f "$LIB/src/${js%.js}.ts" ]] || orphans+=" dist/$js"
done < <(printf '%s\n' "$entries" | sed -n 's|^package/dist/\(.*\.js\)$|\1|p')
if [[ -z "$orphans" ]]; then
  pass "every dist/*.js in the tarball has its source in libs/telemetry/src"
else
  fail "tarball ships dist files whose source is gone (stale build; clean dist and rebuild):$orphans"
fi
missing=""
for f in package/package.json package/dist/index.js package/dist/index.d.ts; do
  printf '%s\n' "$entries" | grep -qx "$f" || missing+=" $f"
done
if [[ -z "$missing" ]]; then
  pass "tarball has package.json, dist/index.js and dist/index.d.ts"
else
  fail "tarball is missing:$missing"
fi

# ---------------------------------------------------------------- 2. install
echo "-- install into a fresh ESM app"
ver() { node -p "const p=require('$ROOT/package.json'); (p.dependencies||{})['$1'] ?? (p.devDependencies||{})['$1'] ?? ''"; }
deps=()
for name in @nestjs/common @nestjs/core @nestjs/platform-express posthog-node rxjs reflect-metadata typescript @types/node; do
  v="$(ver "$name")"
  if [[ -z "$v" ]]; then
    fail "root package.json pins $name"
    finish
  fi
  deps+=("$name@$v")
done
echo "   peers: ${deps[*]}"

cd "$WORK/app" || exit 1
cat >package.json <<'JSON'
{
  "name": "pack-smoke-app",
  "version": "0.0.0",
  "private": true,
  "type": "module"
}
JSON
run_or_abort "npm install of the tarball and its peers" \
  npm install --no-audit --no-fund --prefer-offline --loglevel=error "$TARBALL" "${deps[@]}"

installed_version="$(node -p "require('./node_modules/nestjs-posthog-telemetry/package.json').version" 2>/dev/null)"
lib_version="$(node -p "require('$LIB/package.json').version")"
if [[ "$installed_version" == "$lib_version" ]]; then
  pass "nestjs-posthog-telemetry@$installed_version is installed from the tarball"
else
  fail "installed nestjs-posthog-telemetry version '$installed_version' is the packed '$lib_version'"
fi
if [[ ! -e node_modules/@sentry/node ]]; then
  pass "the optional peer @sentry/node is not installed"
else
  fail "the optional peer @sentry/node is not installed (npm installed it anyway)"
fi

# ---------------------------------------------------------------- 3. app
cat >tsconfig.json <<'JSON'
{
  "compilerOptions": {
    "target": "ES2022",
    "module": "NodeNext",
    "moduleResolution": "NodeNext",
    "lib": ["ES2023"],
    "types": ["node"],
    "rootDir": "src",
    "outDir": "dist",
    "strict": true,
    "experimentalDecorators": true,
    "emitDecoratorMetadata": true,
    "useDefineForClassFields": false,
    "skipLibCheck": true,
    "noEmitOnError": true
  },
  "include": ["src/**/*.ts"]
}
JSON
mkdir -p src
cat >src/main.ts <<'TS'
import 'reflect-metadata';
import { Controller, Get, Inject, Module, Param, type LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import type { PostHog } from 'posthog-node';
import {
  getRequestContext,
  POSTHOG_CLIENT,
  PostHogTelemetryService,
  SkipTelemetry,
  TelemetryModule,
} from 'nestjs-posthog-telemetry';

interface Captured {
  event: string;
  distinct_id: string;
  properties: Record<string, any>;
}

let failures = 0;
function check(ok: boolean, what: string, detail?: unknown): void {
  if (ok) {
    console.log(`  ok   - ${what}`);
  } else {
    failures++;
    console.log(`  FAIL - ${what}${detail === undefined ? '' : `: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`}`);
  }
}

// ---- the fake PostHog: collects the events of POST /batch/ (gzip or plain JSON)
const events: Captured[] = [];
const captureErrors: string[] = [];
const capture: Server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'POST' && (path === '/batch/' || path === '/batch')) {
      try {
        const body = Buffer.concat(chunks);
        const raw = req.headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body;
        const json = JSON.parse(raw.toString('utf8'));
        events.push(...(Array.isArray(json.batch) ? json.batch : [json]));
      } catch (error) {
        captureErrors.push(String(error));
      }
    }
    res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"status":1}');
  });
});

// ---- Nest logs: warnings and errors are shown and kept (telemetry must not complain)
const logged: Array<{ level: string; context: string; message: string }> = [];
class SmokeLogger implements LoggerService {
  log(): void {}
  debug(): void {}
  verbose(): void {}
  warn(message: unknown, ...rest: unknown[]): void {
    this.keep('warn', message, rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.keep('error', message, rest);
  }
  private keep(level: string, message: unknown, rest: unknown[]): void {
    const context = typeof rest[rest.length - 1] === 'string' ? String(rest[rest.length - 1]) : '';
    logged.push({ level, context, message: String(message) });
    console.log(`    [nest ${level}] ${context ? `[${context}] ` : ''}${String(message).split('\n')[0]}`);
  }
}

@Controller()
class SmokeController {
  constructor(private readonly telemetry: PostHogTelemetryService) {}

  @Get('items/:id')
  item(@Param('id') id: string) {
    this.telemetry.capture('smoke_custom', {});
    return { id, requestId: getRequestContext()?.requestId ?? null };
  }

  @SkipTelemetry()
  @Get('skipped')
  skipped() {
    this.telemetry.capture('smoke_custom_skipped', {});
    return { skipped: true };
  }

  @Get('boom')
  boom(): never {
    throw new Error('intentional smoke-test failure');
  }
}

@Module({
  imports: [],
  controllers: [SmokeController],
})
class FeatureModule {}

async function main(): Promise<void> {
  await new Promise<void>((resolve) => capture.listen(0, '127.0.0.1', resolve));
  const captureUrl = `http://127.0.0.1:${(capture.address() as AddressInfo).port}`;

  @Module({
    imports: [
      TelemetryModule.forRoot({
        apiKey: 'phc_smoke',
        host: captureUrl,
        environment: 'smoke',
        posthogOptions: { flushAt: 1, flushInterval: 10 },
      }),
      FeatureModule,
    ],
  })
  class AppModule {}

  const app = await NestFactory.create(AppModule, { logger: new SmokeLogger() });
  await app.listen(0, '127.0.0.1');
  const base = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
  console.log(`    capture server ${captureUrl}, app ${base}`);

  const client = app.get<PostHog>(POSTHOG_CLIENT);
  check(typeof client?.capture === 'function' && typeof client?.shutdown === 'function', 'POSTHOG_CLIENT resolves to a posthog-node client');
  check(app.get(PostHogTelemetryService) instanceof PostHogTelemetryService, 'PostHogTelemetryService is injectable from the app');
  check(getRequestContext() === undefined, 'getRequestContext() is undefined outside a request');

  // ---- requests
  const item = await fetch(`${base}/items/42`, { headers: { 'X-Request-ID': 'smoke-123' } });
  const itemBody = (await item.json()) as { id?: string; requestId?: string | null };
  check(item.status === 200, 'GET /items/42 answers 200', item.status);
  check(item.headers.get('x-request-id') === 'smoke-123', 'GET /items/42 echoes X-Request-ID smoke-123', item.headers.get('x-request-id'));
  check(itemBody.id === '42' && itemBody.requestId === 'smoke-123', 'getRequestContext() inside the handler has requestId smoke-123', itemBody);

  const fresh = await fetch(`${base}/items/7`);
  await fresh.arrayBuffer();
  const freshId = fresh.headers.get('x-request-id');
  check(fresh.status === 200 && typeof freshId === 'string' && freshId.length > 0, 'GET /items/7 without X-Request-ID gets a generated x-request-id', freshId);

  const skipped = await fetch(`${base}/skipped`, { headers: { 'X-Request-ID': 'smoke-skip' } });
  await skipped.arrayBuffer();
  check(skipped.status === 200, 'GET /skipped (@SkipTelemetry) answers 200', skipped.status);
  check(skipped.headers.get('x-request-id') === 'smoke-skip', 'GET /skipped still echoes x-request-id', skipped.headers.get('x-request-id'));

  const boom = await fetch(`${base}/boom`, { headers: { 'X-Request-ID': 'smoke-boom' } });
  await boom.arrayBuffer();
  check(boom.status === 500, 'GET /boom answers 500', boom.status);
  check(boom.headers.get('x-request-id') === 'smoke-boom', 'GET /boom carries x-request-id', boom.headers.get('x-request-id'));

  // ---- shutdown must deliver what is queued
  const closeStarted = Date.now();
  await app.close();
  const closeMs = Date.now() - closeStarted;
  const expected = (list: Captured[]) =>
    list.some((e) => e.event === 'api_request' && e.properties?.request_id === 'smoke-123') &&
    list.some((e) => e.event === 'smoke_custom' && e.properties?.request_id === 'smoke-123') &&
    list.some((e) => e.event === 'api_error' && e.properties?.request_id === 'smoke-boom');
  check(expected(events), `events were delivered by the time app.close() resolved (${closeMs} ms)`, events.map((e) => e.event));
  // Late arrivals would be a failure above; give them a moment so the checks below say what is missing.
  for (let waited = 0; !expected(events) && waited < 3000; waited += 50) await new Promise((r) => setTimeout(r, 50));
  await new Promise<void>((resolve) => {
    capture.closeAllConnections();
    capture.close(() => resolve());
  });

  // ---- events
  console.log(`    captured ${events.length} events: ${events.map((e) => `${e.event}(${e.properties?.request_id ?? '-'})`).join(', ')}`);
  check(captureErrors.length === 0, 'every /batch/ body decoded as JSON', captureErrors);

  const apiRequest = events.filter((e) => e.event === 'api_request' && e.properties?.request_id === 'smoke-123');
  check(apiRequest.length === 1, 'one api_request with request_id smoke-123', apiRequest.length);
  const ar = apiRequest[0]?.properties ?? {};
  check(ar.endpoint === '/items/:id', 'api_request endpoint is the route template /items/:id', ar.endpoint);
  check(ar.method === 'GET' && ar.status_code === 200 && ar.success === true, 'api_request has method GET, status_code 200, success true', { method: ar.method, status_code: ar.status_code, success: ar.success });
  check(typeof ar.response_time_ms === 'number' && ar.environment === 'smoke', 'api_request has response_time_ms and environment smoke', { response_time_ms: ar.response_time_ms, environment: ar.environment });

  // GET /items/42 and GET /items/7 each send one smoke_custom, each with its own request's id.
  const allCustom = events.filter((e) => e.event === 'smoke_custom');
  const custom = allCustom.filter((e) => e.properties?.request_id === 'smoke-123');
  check(custom.length === 1, 'smoke_custom (telemetry.capture) carries request_id smoke-123', allCustom.map((e) => e.properties?.request_id));
  check(allCustom.length === 2 && allCustom.some((e) => e.properties?.request_id === freshId), 'the smoke_custom of GET /items/7 carries its generated request id', allCustom.map((e) => e.properties?.request_id));
  check(custom[0]?.distinct_id === apiRequest[0]?.distinct_id, 'smoke_custom and api_request share a distinct_id', [custom[0]?.distinct_id, apiRequest[0]?.distinct_id]);

  const fresh7 = events.filter((e) => e.event === 'api_request' && e.properties?.request_id === freshId);
  check(fresh7.length === 1 && fresh7[0].properties?.endpoint === '/items/:id', 'api_request for GET /items/7 carries the generated request id', fresh7.length);

  const apiError = events.filter((e) => e.event === 'api_error');
  check(apiError.length === 1, 'exactly one api_error', apiError.map((e) => e.properties?.endpoint));
  const ae = apiError[0]?.properties ?? {};
  check(ae.request_id === 'smoke-boom' && ae.endpoint === '/boom' && ae.status_code === 500, 'api_error is for GET /boom (request_id smoke-boom, status_code 500)', { request_id: ae.request_id, endpoint: ae.endpoint, status_code: ae.status_code });
  check(typeof ae.error_type === 'string' && ae.error_type.length > 0, `api_error has error_type (${String(ae.error_type)})`, ae.error_type);
  check(typeof ae.traceback === 'string' && ae.traceback.includes('intentional smoke-test failure'), 'api_error has a traceback with the error message', typeof ae.traceback === 'string' ? ae.traceback.slice(0, 200) : ae.traceback);
  const boomRequest = events.filter((e) => e.event === 'api_request' && e.properties?.request_id === 'smoke-boom');
  check(boomRequest.length === 1 && boomRequest[0].properties?.status_code === 500, 'api_request for GET /boom has status_code 500', boomRequest.map((e) => e.properties?.status_code));

  const skippedEvents = events.filter((e) => e.properties?.request_id === 'smoke-skip' || e.properties?.endpoint === '/skipped' || e.event === 'smoke_custom_skipped');
  check(skippedEvents.length === 0, 'no event at all for the @SkipTelemetry() route', skippedEvents.map((e) => e.event));

  const complaints = logged.filter((l) => l.context === 'Telemetry' || /telemetry/i.test(l.message));
  check(complaints.length === 0, 'the module logged no warning or error', complaints);

  console.log(failures === 0 ? '    app checks passed' : `    ${failures} app check(s) failed`);
  process.exitCode = failures === 0 ? 0 : 1;
}

main().catch((error: unknown) => {
  console.log(`  FAIL - the smoke app crashed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exitCode = 1;
  capture.closeAllConnections();
  capture.close();
});
TS

echo "-- type-check and compile (tsc, module NodeNext)"
run_or_abort "tsc type-checks the app against the installed package's types and compiles it" \
  ./node_modules/.bin/tsc -p tsconfig.json
# One more pass, checking every .d.ts (skipLibCheck off) and tracing module
# resolution: the package's own declarations must hold, and its types must come
# from the installed tarball. Other packages' .d.ts are not ours to judge
# (posthog-node's, for one, need DOM types), so only errors in ours count.
run_child ./node_modules/.bin/tsc -p tsconfig.json --noEmit --skipLibCheck false --traceResolution >"$WORK/strict.log" 2>&1
strict_out="$(cat "$WORK/strict.log")"
lib_type_errors="$(printf '%s\n' "$strict_out" | grep -E '^node_modules/nestjs-posthog-telemetry/[^(]*\([0-9]+,[0-9]+\): error')"
if [[ -z "$lib_type_errors" ]]; then
  pass "the package's .d.ts files type-check with skipLibCheck off"
else
  fail "the package's .d.ts files type-check with skipLibCheck off:"
  printf '%s\n' "$lib_type_errors" | sed 's/^/      | /' | head -n 20
fi
resolved_types="$(printf '%s\n' "$strict_out" |
  grep -o "Module name 'nestjs-posthog-telemetry' was successfully resolved to '[^']*'" | head -n 1)"
if [[ "$resolved_types" == *"/node_modules/nestjs-posthog-telemetry/dist/index.d.ts'" ]]; then
  pass "'nestjs-posthog-telemetry' types resolve to node_modules/nestjs-posthog-telemetry/dist/index.d.ts"
else
  fail "'nestjs-posthog-telemetry' types resolve to node_modules/nestjs-posthog-telemetry/dist/index.d.ts (${resolved_types:-not resolved})"
fi

# ---------------------------------------------------------------- 4. run
echo "-- run the app (node dist/main.js, 127.0.0.1 only, ${APP_TIMEOUT_S}s limit)"
node_out="$WORK/app.log"
# No process.exit in the app: it must end on its own once app.close() resolved.
run_child timeout --kill-after=5 "$APP_TIMEOUT_S" node dist/main.js >"$node_out" 2>&1
app_rc=$?
cat "$node_out"
app_passed="$(grep -c '^  ok   - ' "$node_out")"
app_failed="$(grep -c '^  FAIL - ' "$node_out")"
PASSED=$((PASSED + app_passed))
FAILED=$((FAILED + app_failed))
if [[ $app_rc -eq 124 || $app_rc -eq 137 ]]; then
  fail "the app exits on its own after app.close() (killed after ${APP_TIMEOUT_S}s: something keeps the event loop alive)"
elif [[ $app_rc -ne 0 ]]; then
  if [[ $app_failed -eq 0 ]]; then fail "the app exits with code 0 (exit $app_rc)"; fi
elif [[ $app_passed -eq 0 ]]; then
  fail "the app ran its checks (no output)"
else
  pass "the app exits with code 0 on its own after app.close()"
fi

finish
