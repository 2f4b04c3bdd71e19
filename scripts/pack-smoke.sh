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
# `npm run test:package` (scripts/package-tests.sh) runs it once per variant below.
#
# Environment: PACK_SMOKE_APP_TIMEOUT (seconds the app may run, default 60);
# PACK_SMOKE_KEEP=1 keeps the temp dir (its path is printed) for debugging.
# Variants:
#   PACK_SMOKE_MODULE=cjs    the app is CommonJS ("type": "commonjs"; tsc emits require()),
#                            so it loads the package through Node's require(esm); a first
#                            step require()s the package alone and lists what that loaded
#   PACK_SMOKE_PEERS="posthog-node@5.61.1 @sentry/node@10.0.0"
#                            these versions instead of the root package.json's pins (or
#                            added to them; "@nestjs/core@12.0.0 …" for Nest itself);
#                            with @sentry/node the app runs with Sentry on
#                            (the module's `sentry: { dsn }`, a Sentry endpoint on 127.0.0.1)
#   PACK_SMOKE_NPM_FLAGS="--legacy-peer-deps"
#                            more flags for the app's npm install
#   PACK_SMOKE_NODES="/path/to/node ..."
#                            runs the app (and the CommonJS require step) under each of these
#                            Node binaries, on one install; default: the `node` on PATH
#   PACK_SMOKE_TARBALL=x.tgz installs this tarball instead of packing; PACK_SMOKE_CHECK_TARBALL=0
#                            skips the checks of the tarball's contents (its files, nothing
#                            missing, its README the package's own with no broken link or image)
#   PACK_SMOKE_LABEL         names the variant in the first line
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LIB="$ROOT/libs/telemetry"
APP_TIMEOUT_S="${PACK_SMOKE_APP_TIMEOUT:-60}"
MODULE="${PACK_SMOKE_MODULE:-esm}"
PEERS_OVERRIDE="${PACK_SMOKE_PEERS:-}"
read -r -a RUN_NODES <<<"${PACK_SMOKE_NODES:-$(command -v node)}"
GIVEN_TARBALL="${PACK_SMOKE_TARBALL:-}"
CHECK_TARBALL="${PACK_SMOKE_CHECK_TARBALL:-1}"
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

echo "== package smoke test: nestjs-posthog-telemetry${PACK_SMOKE_LABEL:+ ($PACK_SMOKE_LABEL)}"
if [[ "$MODULE" != esm && "$MODULE" != cjs ]]; then
  fail "PACK_SMOKE_MODULE is esm or cjs (not '$MODULE')"
  finish
fi

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
cd "$ROOT" || exit 1
if [[ -n "$GIVEN_TARBALL" ]]; then
  if [[ ! -f "$GIVEN_TARBALL" ]]; then
    fail "PACK_SMOKE_TARBALL $GIVEN_TARBALL exists"
    finish
  fi
  TARBALL="$(cd "$(dirname "$GIVEN_TARBALL")" && pwd)/$(basename "$GIVEN_TARBALL")"
else
  echo "-- npm pack"
  run_or_abort "npm pack ./libs/telemetry" npm pack ./libs/telemetry --pack-destination "$WORK/pack" --silent
  shopt -s nullglob
  tarballs=("$WORK"/pack/*.tgz)
  shopt -u nullglob
  if [[ ${#tarballs[@]} -ne 1 ]]; then
    fail "npm pack produced exactly one tarball (found ${#tarballs[@]})"
    finish
  fi
  TARBALL="${tarballs[0]}"
fi
echo "   tarball: $(basename "$TARBALL") ($(du -k "$TARBALL" | cut -f1) KiB)"

if [[ "$CHECK_TARBALL" != 0 ]]; then

entries="$(tar tzf "$TARBALL")"
entry_count="$(printf '%s\n' "$entries" | grep -c .)"
unexpected="$(printf '%s\n' "$entries" | grep -Ev '^package/(dist/.+|package\.json|README\.md|LICENSE)$')"
if [[ -z "$unexpected" ]]; then
  pass "tarball holds only dist/, package.json, README.md and LICENSE ($entry_count files)"
else
  fail "tarball holds only dist/, package.json, README.md and LICENSE; also found:"
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
wanted="package/package.json package/README.md package/dist/index.js package/dist/index.d.ts"
[[ -f "$LIB/LICENSE" ]] && wanted+=" package/LICENSE"
for f in $wanted; do
  printf '%s\n' "$entries" | grep -qx "$f" || missing+=" $f"
done
# Each source file ships as its .js and .d.ts: a file left out of the build would be missing.
while IFS= read -r src; do
  for out in "package/dist/${src%.ts}.js" "package/dist/${src%.ts}.d.ts"; do
    printf '%s\n' "$entries" | grep -qxF "$out" || missing+=" ${out#package/}"
  done
done < <(cd "$LIB/src" && find . -name '*.ts' ! -name '*.d.ts' ! -name '*.spec.ts' ! -name '*.test.ts' | sed 's|^\./||')
if [[ -z "$missing" ]]; then
  pass "tarball has package.json, README.md, LICENSE, and each source file's dist .js and .d.ts"
else
  fail "tarball is missing:$missing"
fi
# The README npm shows: the package's own, with no broken link or picture (release-check-files.mjs).
mkdir -p "$WORK/unpacked"
tar xzf "$TARBALL" -C "$WORK/unpacked"
node "$ROOT/scripts/release-check-files.mjs" --readme "$WORK/unpacked/package" "$ROOT" >"$WORK/readme.log" 2>&1
readme_rc=$?
cat "$WORK/readme.log"
PASSED=$((PASSED + $(grep -c '^  ok   - ' "$WORK/readme.log")))
FAILED=$((FAILED + $(grep -c '^  FAIL - ' "$WORK/readme.log")))
if [[ $readme_rc -ne 0 ]] && ! grep -q '^  FAIL - ' "$WORK/readme.log"; then fail "the README check ran (exit $readme_rc)"; fi
fi # CHECK_TARBALL

# ---------------------------------------------------------------- 2. install
if [[ "$MODULE" == cjs ]]; then
  echo "-- install into a fresh CommonJS app"
else
  echo "-- install into a fresh ESM app"
fi
ver() { node -p "const p=require('$ROOT/package.json'); (p.dependencies||{})['$1'] ?? (p.devDependencies||{})['$1'] ?? ''"; }
# name@version -> name (a scoped name keeps its leading @)
spec_name() { local s="$1"; if [[ "$s" == @* ]]; then echo "@${s#@}" | sed -E 's/^(@[^@]+)@.*$/\1/'; else echo "${s%%@*}"; fi; }
read -r -a overrides <<<"$PEERS_OVERRIDE"
override_for() { local o; for o in "${overrides[@]}"; do [[ "$(spec_name "$o")" == "$1" ]] && { echo "$o"; return; }; done; }
deps=()
for name in @nestjs/common @nestjs/core @nestjs/platform-express posthog-node rxjs reflect-metadata typescript @types/node; do
  o="$(override_for "$name")"
  if [[ -n "$o" ]]; then deps+=("$o"); continue; fi
  v="$(ver "$name")"
  if [[ -z "$v" ]]; then
    fail "root package.json pins $name"
    finish
  fi
  deps+=("$name@$v")
done
for o in "${overrides[@]}"; do
  case " ${deps[*]} " in *" $o "*) ;; *) deps+=("$o") ;; esac
done
WITH_SENTRY=""
for d in "${deps[@]}"; do [[ "$(spec_name "$d")" == @sentry/node ]] && WITH_SENTRY=1; done
echo "   peers: ${deps[*]}"

cd "$WORK/app" || exit 1
if [[ "$MODULE" == cjs ]]; then app_type=commonjs; else app_type=module; fi
cat >package.json <<JSON
{
  "name": "pack-smoke-app",
  "version": "0.0.0",
  "private": true,
  "type": "$app_type"
}
JSON
read -r -a npm_flags <<<"${PACK_SMOKE_NPM_FLAGS:-}"
[[ ${#npm_flags[@]} -gt 0 ]] && echo "   npm install flags: ${npm_flags[*]}"
run_or_abort "npm install of the tarball and its peers" \
  npm install --no-audit --no-fund --prefer-offline --loglevel=error "${npm_flags[@]}" "$TARBALL" "${deps[@]}"
# The versions asked for are the versions installed (npm would not swap a peer silently).
for d in "${deps[@]}"; do
  n="$(spec_name "$d")"
  want="${d#"$n"@}"
  got="$(node -p "require('./node_modules/$n/package.json').version" 2>/dev/null)"
  if [[ "$got" != "$want" ]]; then fail "$n@$want is installed (found '${got:-nothing}')"; fi
done

installed_version="$(node -p "require('./node_modules/nestjs-posthog-telemetry/package.json').version" 2>/dev/null)"
lib_version="$(node -p "require('$LIB/package.json').version")"
if [[ "$installed_version" == "$lib_version" ]]; then
  pass "nestjs-posthog-telemetry@$installed_version is installed from the tarball"
else
  fail "installed nestjs-posthog-telemetry version '$installed_version' is the packed '$lib_version'"
fi
if [[ -n "$WITH_SENTRY" ]]; then
  pass "the optional peer @sentry/node@$(node -p "require('./node_modules/@sentry/node/package.json').version") is installed: the app runs with Sentry on"
elif [[ ! -e node_modules/@sentry/node ]]; then
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
  TelemetryService,
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

// ---- with SMOKE_SENTRY=1 (the variants with @sentry/node): a Sentry endpoint; keeps the error events of each envelope
const sentryOn = process.env.SMOKE_SENTRY === '1';
const sentryEvents: Array<{ event_id?: string; tags?: Record<string, string> }> = [];
const sentryServer: Server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    try {
      const body = Buffer.concat(chunks);
      const text = (req.headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body).toString('utf8');
      const lines = text.split('\n').filter((line) => line.trim() !== '');
      for (let i = 1; i + 1 < lines.length; i += 2) {
        if (JSON.parse(lines[i]).type === 'event') sentryEvents.push(JSON.parse(lines[i + 1]));
      }
    } catch (error) {
      captureErrors.push(`sentry envelope: ${String(error)}`);
    }
    res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
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
  constructor(private readonly telemetry: TelemetryService) {}

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
  if (sentryOn) await new Promise<void>((resolve) => sentryServer.listen(0, '127.0.0.1', resolve));
  const sentryDsn = sentryOn ? `http://public@127.0.0.1:${(sentryServer.address() as AddressInfo).port}/1` : undefined;
  console.log(`    ${process.version}, ${typeof require === 'function' ? 'CommonJS' : 'ES module'} app, Sentry ${sentryOn ? 'on' : 'off'}`);

  @Module({
    imports: [
      TelemetryModule.forRoot({
        apiKey: 'phc_smoke',
        host: captureUrl,
        environment: 'smoke',
        posthogOptions: { flushAt: 1, flushInterval: 10 },
        ...(sentryDsn ? { sentry: { dsn: sentryDsn } } : {}),
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
  check(app.get(TelemetryService) instanceof TelemetryService, 'TelemetryService is injectable from the app');
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
  const sentryId = events.find((e) => e.event === 'api_error')?.properties?.sentry_event_id;
  const sentryExpected = () => sentryEvents.some((e) => e.event_id === sentryId);
  for (let waited = 0; sentryOn && !sentryExpected() && waited < 5000; waited += 50) await new Promise((r) => setTimeout(r, 50));
  await new Promise<void>((resolve) => {
    capture.closeAllConnections();
    capture.close(() => resolve());
  });
  if (sentryOn) {
    await new Promise<void>((resolve) => {
      sentryServer.closeAllConnections();
      sentryServer.close(() => resolve());
    });
  }

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
  if (sentryOn) {
    check(typeof ae.sentry_event_id === 'string' && /^[0-9a-f]{32}$/.test(ae.sentry_event_id), 'api_error carries the Sentry event id (sentry_event_id)', ae.sentry_event_id);
    const sentryEvent = sentryEvents.find((e) => e.event_id === ae.sentry_event_id);
    check(sentryEvent !== undefined, 'Sentry received that event', sentryEvents.map((e) => e.event_id));
    check(sentryEvent?.tags?.request_id === 'smoke-boom', 'the Sentry event is tagged request_id smoke-boom', sentryEvent?.tags);
    check(sentryEvents.length === 1, 'Sentry received exactly one error event', sentryEvents.length);
  } else {
    check(ae.sentry_event_id === undefined, 'api_error has no sentry_event_id without Sentry', ae.sentry_event_id);
  }
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
  if (sentryServer.listening) {
    sentryServer.closeAllConnections();
    sentryServer.close();
  }
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
if [[ "$MODULE" == cjs ]]; then
  # require() of the package alone, before any app code: loads its whole static ESM graph
  # (the package, @nestjs/core with its deep imports, posthog-node…) synchronously through
  # require(esm), which fails with ERR_REQUIRE_ASYNC_MODULE on a top-level await anywhere
  # in it. Where Node has module.registerHooks (22.15+, 24), lists the modules that loaded.
  cat >require-graph.cjs <<'JS'
const mod = require('node:module');
const loaded = [];
if (typeof mod.registerHooks === 'function') {
  mod.registerHooks({
    load(url, context, nextLoad) {
      const result = nextLoad(url, context);
      loaded.push({ url, format: result.format });
      return result;
    },
  });
}
let failures = 0;
const check = (ok, what, detail) => {
  if (ok) console.log(`  ok   - ${what}`);
  else {
    failures++;
    console.log(`  FAIL - ${what}${detail === undefined ? '' : `: ${detail}`}`);
  }
};
let lib;
try {
  lib = require('nestjs-posthog-telemetry');
  check(true, `${process.version}: require('nestjs-posthog-telemetry') loads the package synchronously (require(esm))`);
} catch (error) {
  check(false, `${process.version}: require('nestjs-posthog-telemetry') loads the package synchronously (require(esm))`, `${error.code ?? ''} ${error.message}`);
  process.exitCode = 1;
  return;
}
check(typeof lib.TelemetryModule?.forRoot === 'function', 'TelemetryModule.forRoot is a function');
if (loaded.length > 0) {
  const esm = loaded.filter((m) => m.format === 'module' || m.format === 'module-typescript');
  const ours = esm.filter((m) => m.url.includes('/node_modules/nestjs-posthog-telemetry/dist/'));
  const dist = require('node:path').dirname(require.resolve('nestjs-posthog-telemetry'));
  const files = new Set(require('node:fs').readdirSync(dist, { recursive: true }).filter((f) => String(f).endsWith('.js')));
  check(ours.length > 0 && new Set(ours.map((m) => m.url)).size === ours.length && ours.length <= files.size, `it loaded ${loaded.length} modules, ${esm.length} of them ES modules (${ours.length} of the package's ${files.size} dist files) without top-level await`);
  const deep = ['@nestjs/core/exceptions/exceptions-handler.js', '@nestjs/core/router/router-response-controller.js'];
  const absent = deep.filter((d) => !loaded.some((m) => m.url.endsWith(`/node_modules/${d}`)));
  check(absent.length === 0, `the graph includes the deep imports ${deep.join(', ')}`, absent.join(', '));
  check(loaded.some((m) => m.url.includes('/node_modules/posthog-node/')), 'the graph includes posthog-node');
}
// require() and import() must hand out the very same module instance: one copy of the
// package's state (its request context, its client), whichever way an app loads it.
import('nestjs-posthog-telemetry').then(
  (ns) => {
    const keys = Object.keys(ns).filter((k) => k !== 'default' && k !== 'module.exports');
    const differ = keys.filter((k) => ns[k] !== lib[k]);
    check(keys.length > 0 && differ.length === 0, `require() and import() give the same ${keys.length} exports, the very same objects`, differ.join(', '));
    process.exitCode = failures === 0 ? 0 : 1;
  },
  (error) => {
    check(false, "import('nestjs-posthog-telemetry') from the same CommonJS file", error.message);
    process.exitCode = 1;
  },
);
JS
fi

for run_node in "${RUN_NODES[@]}"; do
  run_version="$("$run_node" -v 2>/dev/null)"
  if [[ -z "$run_version" ]]; then
    fail "$run_node runs"
    continue
  fi
  if [[ "$MODULE" == cjs ]]; then
    echo "-- require('nestjs-posthog-telemetry') from CommonJS, Node $run_version"
    run_child timeout --kill-after=5 "$APP_TIMEOUT_S" "$run_node" require-graph.cjs >"$WORK/require.log" 2>&1
    require_rc=$?
    grep -vE '^\(node:[0-9]+\) ExperimentalWarning|^\(Use `node --trace-warnings' "$WORK/require.log"
    PASSED=$((PASSED + $(grep -c '^  ok   - ' "$WORK/require.log")))
    FAILED=$((FAILED + $(grep -c '^  FAIL - ' "$WORK/require.log")))
    if [[ $require_rc -ne 0 ]] && ! grep -q '^  FAIL - ' "$WORK/require.log"; then
      fail "the require step exits with code 0 (exit $require_rc)"
    fi
    if grep -q ERR_REQUIRE_ASYNC_MODULE "$WORK/require.log"; then
      echo "   where the top-level await is (--experimental-print-required-tla):"
      "$run_node" --experimental-print-required-tla require-graph.cjs 2>&1 | sed 's/^/      | /' | head -n 30
    fi
  fi
  echo "-- run the app (Node $run_version, dist/main.js, 127.0.0.1 only, ${APP_TIMEOUT_S}s limit)"
  node_out="$WORK/app.log"
  # No process.exit in the app: it must end on its own once app.close() resolved.
  SMOKE_SENTRY="${WITH_SENTRY:-0}" run_child timeout --kill-after=5 "$APP_TIMEOUT_S" "$run_node" dist/main.js >"$node_out" 2>&1
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
    pass "the app exits with code 0 on its own after app.close() (Node $run_version)"
  fi
done

finish
