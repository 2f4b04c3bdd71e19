#!/usr/bin/env bash
# `npm run release:check` (which builds the library first): is libs/telemetry publishable as it is?
#   1. `npm publish --dry-run` from libs/telemetry succeeds without warnings, and the files it
#      would upload are the right ones (scripts/release-check-files.mjs): README, package.json,
#      LICENSE, dist/index.js and .d.ts there, and every source file's .js and .d.ts; no sources,
#      specs or build info; the README is libs/telemetry/README.md, whose links and images point
#      into the tarball or (links) to the repository's docs; every exports/main/types target,
#      every relative import of every .js and .d.ts shipped; every package imported declared;
#      source maps whole; no top-level await in any file. Then every relative link and image of
#      the repository's Markdown (README.md, docs/, …) resolves, anchors included, and docs/api.md
#      and docs/configuration.md name every export of src/index.ts and every module option.
#   2. `attw` (@arethetypeswrong/cli) on the packed tarball, profile esm-only (see below).
#   3. Consumers, from the same tarball: the smoke app of scripts/pack-smoke.sh as an ES module
#      app and as a CommonJS app (`"type": "commonjs"`, require(esm): the whole graph loads
#      synchronously, so with no top-level await anywhere in it), each type-checked with tsc
#      (module NodeNext) and run on every Node version of scripts/node-versions.sh.
# Ends with `release check: N passed, M failed`; exits non-zero on any failure.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LIB="$ROOT/libs/telemetry"
START_S=$SECONDS
PASSED=0
FAILED=0
count() { # adds up the ok/FAIL lines of a step's output
  PASSED=$((PASSED + $(grep -c '^  ok   - ' "$1")))
  FAILED=$((FAILED + $(grep -c '^  FAIL - ' "$1")))
}
pass() { PASSED=$((PASSED + 1)); echo "  ok   - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "  FAIL - $*"; }
finish() {
  echo "(took $((SECONDS - START_S)) s)"
  echo "release check: $PASSED passed, $FAILED failed"
  [[ $FAILED -eq 0 ]]
  exit $?
}

WORK="$(mktemp -d "${TMPDIR:-/tmp}/release-check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
trap 'echo "release-check: interrupted"; exit 130' INT TERM
cd "$ROOT" || exit 1

echo "== release check: nestjs-posthog-telemetry@$(node -p "require('$LIB/package.json').version")"
if [[ ! -f "$LIB/dist/index.js" ]]; then
  fail "libs/telemetry/dist is built (npm run release:check builds it)"
  finish
fi

# ---------------------------------------------------------------- 1. npm publish --dry-run
echo "-- npm publish --dry-run (libs/telemetry)"
if (cd "$LIB" && npm publish --dry-run --json >"$WORK/publish.json" 2>"$WORK/publish.err"); then
  pass "npm publish --dry-run succeeds"
else
  fail "npm publish --dry-run succeeds"
  sed 's/^/      | /' "$WORK/publish.err" | tail -n 30
  finish
fi
# Not being logged in is expected here; any other warning (a field npm had to correct, …) is not.
warnings="$(grep -E '^npm (warn|WARN)' "$WORK/publish.err" | grep -v 'requires you to be logged in')"
if [[ -z "$warnings" ]]; then
  pass "npm publish --dry-run prints no warning (but that this machine is not logged in)"
else
  fail "npm publish --dry-run prints no warning:"
  printf '%s\n' "$warnings" | sed 's/^/      | /'
fi

mkdir -p "$WORK/pack" "$WORK/unpacked"
if ! npm pack ./libs/telemetry --pack-destination "$WORK/pack" --silent >"$WORK/pack.log" 2>&1; then
  fail "npm pack ./libs/telemetry"
  sed 's/^/      | /' "$WORK/pack.log" | tail -n 30
  finish
fi
TARBALL="$(ls "$WORK"/pack/*.tgz)"
tar xzf "$TARBALL" -C "$WORK/unpacked"
pack_files="$(cd "$WORK/unpacked/package" && find . -type f | sed 's|^\./||' | sort)"
publish_files="$(node -e 'const p = Object.values(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")))[0]; console.log(p.files.map((f) => f.path).sort().join("\n"))' "$WORK/publish.json")"
if [[ "$pack_files" == "$publish_files" ]]; then
  pass "npm pack's tarball holds exactly the files npm publish would upload"
else
  fail "npm pack's tarball holds exactly the files npm publish would upload:"
  diff <(printf '%s\n' "$publish_files") <(printf '%s\n' "$pack_files") | sed 's/^/      | /' | head -n 20
fi
node "$ROOT/scripts/release-check-files.mjs" "$WORK/unpacked/package" "$WORK/publish.json" "$ROOT" >"$WORK/files.log" 2>&1
files_rc=$?
cat "$WORK/files.log"
count "$WORK/files.log"
if [[ $files_rc -ne 0 ]] && ! grep -q '^  FAIL - ' "$WORK/files.log"; then fail "scripts/release-check-files.mjs ran (exit $files_rc)"; fi
echo "-- the repository's Markdown links"
node "$ROOT/scripts/release-check-files.mjs" --docs "$ROOT" >"$WORK/docs.log" 2>&1
docs_rc=$?
cat "$WORK/docs.log"
count "$WORK/docs.log"
if [[ $docs_rc -ne 0 ]] && ! grep -q '^  FAIL - ' "$WORK/docs.log"; then fail "scripts/release-check-files.mjs --docs ran (exit $docs_rc)"; fi

# engines.node names what CI tests: each Node version of scripts/node-versions.sh must satisfy it.
engines="$(node -p "require('$LIB/package.json').engines?.node ?? ''")"
outside_engines="$(node -e '
  const semver = require(process.argv[1] + "/node_modules/semver");
  const out = process.argv.slice(3).filter((v) => !semver.satisfies(v, process.argv[2]));
  console.log(out.join(" "));
' "$ROOT" "$engines" $(bash "$ROOT/scripts/node-versions.sh" list) 2>&1)"
if [[ -n "$engines" && -z "$outside_engines" ]]; then
  pass "engines.node \"$engines\" admits every Node version CI tests ($(bash "$ROOT/scripts/node-versions.sh" list | tr '\n' ' ' | sed 's/ $//'))"
else
  fail "engines.node \"$engines\" admits every Node version CI tests (not: $outside_engines)"
fi

name="$(node -p "require('$LIB/package.json').name")"
version="$(node -p "require('$LIB/package.json').version")"
if npm view "$name@$version" version >/dev/null 2>&1; then
  echo "  note - $name@$version is already on the npm registry: bump the version before npm publish"
else
  echo "  note - $name@$version is not on the npm registry yet"
fi

# ---------------------------------------------------------------- 2. attw
# Profile esm-only: the package is an ES module only, by design (Nest 12 is). attw 0.18's
# resolution model (TypeScript 5.6) predates require(esm), so for "node16 (from CJS)" it
# reports "ESM (dynamic import only)", untrue on Node >= 20.19 and TypeScript >= 5.8 with
# module nodenext; esm-only leaves that resolution out, and step 3 checks a real CommonJS
# consumer instead (tsc, then require() on each Node version). Still checked by attw: types
# for ES module consumers (node16/nodenext) and bundlers, and the exports map's shape.
echo "-- attw --profile esm-only (@arethetypeswrong/cli $(node -p "require('$ROOT/node_modules/@arethetypeswrong/cli/package.json').version"))"
"$ROOT/node_modules/.bin/attw" "$TARBALL" --profile esm-only --format table --no-color >"$WORK/attw.log" 2>&1
attw_rc=$?
sed 's/^/      | /' "$WORK/attw.log"
if [[ $attw_rc -eq 0 ]]; then
  pass "attw finds no problem for ES module consumers (node16 from ESM, bundler)"
else
  fail "attw finds no problem for ES module consumers (exit $attw_rc)"
fi

# ---------------------------------------------------------------- 3. consumers
nodes=()
while IFS= read -r v; do
  if p="$(bash "$ROOT/scripts/node-versions.sh" path "$v")"; then nodes+=("$p"); else fail "Node $v is at hand (scripts/node-versions.sh path $v)"; fi
done < <(bash "$ROOT/scripts/node-versions.sh" list)
for module in esm cjs; do
  echo "-- a fresh $([[ $module == cjs ]] && echo CommonJS || echo 'ES module') consumer, on Node $(bash "$ROOT/scripts/node-versions.sh" list | tr '\n' ' ')"
  PACK_SMOKE_LABEL="$module consumer" PACK_SMOKE_MODULE=$module PACK_SMOKE_TARBALL="$TARBALL" PACK_SMOKE_CHECK_TARBALL=0 \
    PACK_SMOKE_NODES="${nodes[*]}" bash "$ROOT/scripts/pack-smoke.sh" >"$WORK/$module.log" 2>&1
  smoke_rc=$?
  # Shown: every step and failure; of the app's own checks (the same as npm run test:package's),
  # only their total.
  awk '/^(--|==)/ { inapp = /^-- run the app/ } !(inapp && /^  ok   - / && !/the app exits/) && !/^    (captured|capture server|\[nest)/' "$WORK/$module.log" |
    sed -E "s/^package smoke: ([0-9]+ passed, [0-9]+ failed)$/package smoke, $module consumer: \1/"
  count "$WORK/$module.log"
  if [[ $smoke_rc -ne 0 ]] && ! grep -q '^  FAIL - ' "$WORK/$module.log"; then fail "the $module consumer check ran to its end (exit $smoke_rc)"; fi
done

finish
