#!/usr/bin/env bash
# `npm run test:package`: the packed-tarball smoke test (scripts/pack-smoke.sh), once per
# variant, all on one `npm pack` of libs/telemetry:
#   esm             an ES module app with the root package.json's pins, without @sentry/node
#   cjs             the same app as CommonJS: loads the package through require(esm)
#   lowest-peers    ES module app, the lowest posthog-node and @sentry/node the peer ranges
#                   in libs/telemetry/package.json allow, with Sentry on
#   newest-peers    the same with the newest versions those ranges allow
#   lowest-nest     ES module app on the lowest @nestjs/common and @nestjs/core the peer ranges
#                   allow (12.0.0), with @nestjs/platform-express of the same version (installed
#                   with --legacy-peer-deps when that @nestjs/core's own peer ranges refuse it)
# The lowest and newest are asked of the npm registry (`npm view`) at each run, so a new
# posthog-node or @sentry/node release is tested as soon as it is out.
# The first variant also checks the tarball itself: its files, and that its README.md is
# libs/telemetry/README.md with no broken link or picture (scripts/release-check-files.mjs --readme).
#
# PACK_SMOKE_VARIANTS="esm cjs" runs only those. The other PACK_SMOKE_* settings of
# pack-smoke.sh pass through (PACK_SMOKE_NODES, PACK_SMOKE_KEEP…).
# Ends with `package smoke: N passed, M failed` over all variants; exits non-zero on a failure.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
read -r -a VARIANTS <<<"${PACK_SMOKE_VARIANTS:-esm cjs lowest-peers newest-peers lowest-nest}"
START_S=$SECONDS
PASSED=0
FAILED=0
RECAP=()

PACK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/pack-tests.XXXXXX")"
trap 'rm -rf "$PACK_DIR"' EXIT
trap 'echo "package-tests: interrupted"; exit 130' INT TERM

finish() {
  echo
  echo "== package smoke variants ($((SECONDS - START_S)) s)"
  printf '%s\n' "${RECAP[@]}"
  echo "package smoke: $PASSED passed, $FAILED failed"
  [[ $FAILED -eq 0 ]]
  exit $?
}

# Lowest or newest version of a package that a peer range of libs/telemetry allows.
peer_version() {
  local name="$1" which="$2" range versions
  range="$(node -p "require('$ROOT/libs/telemetry/package.json').peerDependencies['$name'] ?? ''")"
  [[ -n "$range" ]] || { echo "package-tests: libs/telemetry has no peer $name" >&2; return 1; }
  versions="$(npm view "$name@$range" version --json 2>/dev/null)" || { echo "package-tests: npm view $name@$range failed" >&2; return 1; }
  WHICH="$which" node -e '
    let v = JSON.parse(require("fs").readFileSync(0, "utf8"));
    v = (Array.isArray(v) ? v : [v]).filter((x) => /^\d+\.\d+\.\d+$/.test(x));
    const key = (x) => x.split(".").map(Number);
    v.sort((a, b) => { const [p, q] = [key(a), key(b)]; return p[0] - q[0] || p[1] - q[1] || p[2] - q[2]; });
    if (v.length === 0) process.exit(1);
    console.log(process.env.WHICH === "lowest" ? v[0] : v[v.length - 1]);
  ' <<<"$versions"
}

run_variant() {
  local label="$1"
  shift
  local log="$PACK_DIR/$label.log"
  # Each variant's own closing line is renamed: the last line of all is the one summary.
  # Passing checks stay in the log (PACK_SMOKE_VERBOSE=1 prints them); failures, notes and sections are printed.
  env PACK_SMOKE_LABEL="$label" PACK_SMOKE_TARBALL="$TARBALL" "$@" bash "$ROOT/scripts/pack-smoke.sh" 2>&1 |
    tee "$log" | { if [[ "${PACK_SMOKE_VERBOSE:-0}" == 1 ]]; then cat; else grep --line-buffered -vE '^  ok   - |^    (captured|capture server|peers:|v[0-9]+\.)'; fi; } |
    sed -u -E "s/^package smoke: ([0-9]+ passed, [0-9]+ failed)$/package smoke, $label: \1/"
  local line p f
  line="$(grep -E '^package smoke: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)"
  if [[ -z "$line" ]]; then
    FAILED=$((FAILED + 1))
    RECAP+=("  $label: no summary line (the smoke test stopped early)")
    return
  fi
  p="$(sed -E 's/^package smoke: ([0-9]+) passed.*/\1/' <<<"$line")"
  f="$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$line")"
  PASSED=$((PASSED + p))
  FAILED=$((FAILED + f))
  RECAP+=("  $label: $p passed, $f failed ($(grep -E '^\(took [0-9]+ s\)$' "$log" | tail -n 1 | tr -d '()'))")
}

cd "$ROOT" || exit 1
echo "== npm pack ./libs/telemetry (once, for every variant)"
if ! npm pack ./libs/telemetry --pack-destination "$PACK_DIR" --silent >"$PACK_DIR/pack.log" 2>&1; then
  cat "$PACK_DIR/pack.log"
  FAILED=$((FAILED + 1))
  RECAP+=("  npm pack ./libs/telemetry failed")
  finish
fi
TARBALL="$(ls "$PACK_DIR"/*.tgz)"

first=1
for variant in "${VARIANTS[@]}"; do
  check_tarball=0
  [[ $first -eq 1 ]] && check_tarball=1
  first=0
  case "$variant" in
    esm) run_variant esm PACK_SMOKE_CHECK_TARBALL=$check_tarball PACK_SMOKE_MODULE=esm ;;
    cjs) run_variant cjs PACK_SMOKE_CHECK_TARBALL=$check_tarball PACK_SMOKE_MODULE=cjs ;;
    lowest-peers | newest-peers)
      which="${variant%-peers}"
      if ! ph="$(peer_version posthog-node "$which")" || ! se="$(peer_version @sentry/node "$which")"; then
        FAILED=$((FAILED + 1))
        RECAP+=("  $variant: could not find the $which posthog-node and @sentry/node in the npm registry")
        continue
      fi
      run_variant "$variant" PACK_SMOKE_CHECK_TARBALL=$check_tarball PACK_SMOKE_MODULE=esm \
        PACK_SMOKE_PEERS="posthog-node@$ph @sentry/node@$se"
      ;;
    lowest-nest)
      # The adapter is no peer: the version of @nestjs/core's, which Nest releases together.
      if ! common="$(peer_version @nestjs/common lowest)" || ! core="$(peer_version @nestjs/core lowest)" ||
        ! npm view "@nestjs/platform-express@$core" version >/dev/null 2>&1; then
        FAILED=$((FAILED + 1))
        RECAP+=("  $variant: could not find the lowest @nestjs/common, @nestjs/core and @nestjs/platform-express in the npm registry")
        continue
      fi
      # @nestjs/core 12.0.0 was published with peer ranges of Nest 11 (`@nestjs/common@^11.0.0`):
      # npm refuses it beside @nestjs/common 12 unless told to leave peers alone. The module is
      # still tested on that code; the app installs every peer itself.
      npm_flags=""
      core_wants="$(npm view "@nestjs/core@$core" peerDependencies --json 2>/dev/null |
        node -e 'let s="";process.stdin.on("data",(d)=>(s+=d)).on("end",()=>{try{console.log(JSON.parse(s)["@nestjs/common"]??"")}catch{console.log("")}})')"
      if [[ -n "$core_wants" ]] && ! node -e 'process.exit(require(process.argv[1] + "/node_modules/semver").satisfies(process.argv[2], process.argv[3]) ? 0 : 1)' "$ROOT" "$common" "$core_wants"; then
        npm_flags="--legacy-peer-deps"
        echo "   note: @nestjs/core@$core asks for @nestjs/common@$core_wants; installing with $npm_flags"
      fi
      run_variant "$variant" PACK_SMOKE_CHECK_TARBALL=$check_tarball PACK_SMOKE_MODULE=esm PACK_SMOKE_NPM_FLAGS="$npm_flags" \
        PACK_SMOKE_PEERS="@nestjs/common@$common @nestjs/core@$core @nestjs/platform-express@$core"
      ;;
    *)
      FAILED=$((FAILED + 1))
      RECAP+=("  unknown variant '$variant' (esm, cjs, lowest-peers, newest-peers, lowest-nest)")
      ;;
  esac
done
finish
