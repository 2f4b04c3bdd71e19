#!/usr/bin/env bash
# `npm run test:package`: the packed-tarball smoke test (scripts/pack-smoke.sh), once per
# variant, all on one `npm pack` of libs/telemetry:
#   esm             an ES module app with the root package.json's pins, without @sentry/node
#   cjs             the same app as CommonJS: loads the package through require(esm)
#   lowest-peers    ES module app, the lowest posthog-node and @sentry/node the peer ranges
#                   in libs/telemetry/package.json allow, with Sentry on
#   newest-peers    the same with the newest versions those ranges allow
# The lowest and newest are asked of the npm registry (`npm view`) at each run, so a new
# posthog-node or @sentry/node release is tested as soon as it is out.
#
# PACK_SMOKE_VARIANTS="esm cjs" runs only those. The other PACK_SMOKE_* settings of
# pack-smoke.sh pass through (PACK_SMOKE_NODES, PACK_SMOKE_KEEP…).
# Ends with `package smoke: N passed, M failed` over all variants; exits non-zero on a failure.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
read -r -a VARIANTS <<<"${PACK_SMOKE_VARIANTS:-esm cjs lowest-peers newest-peers}"
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
  env PACK_SMOKE_LABEL="$label" PACK_SMOKE_TARBALL="$TARBALL" "$@" bash "$ROOT/scripts/pack-smoke.sh" 2>&1 |
    tee "$log" | sed -u -E "s/^package smoke: ([0-9]+ passed, [0-9]+ failed)$/package smoke, $label: \1/"
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
    *)
      FAILED=$((FAILED + 1))
      RECAP+=("  unknown variant '$variant' (esm, cjs, lowest-peers, newest-peers)")
      ;;
  esac
done
finish
