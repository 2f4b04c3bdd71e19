#!/usr/bin/env bash
# `npm run test:matrix`: the whole of `npm test` (build, Jest, faults, system, package) once per
# Node version of scripts/node-versions.sh, the newest first. Each run has that version's `node`
# first on PATH, so npm, tsc, Jest, the built apps and the packed-tarball smoke test all run on it.
# The newest version (the primary) runs every package smoke variant (lowest and newest peers
# too); the others run the ES module and CommonJS consumers (PACK_SMOKE_VARIANTS="esm cjs").
#
# TEST_MATRIX_VERSIONS="22.23.5" runs only those versions.
# Ends with each run's summary lines and `matrix: N passed, M failed` over all of them.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
if [[ -n "${TEST_MATRIX_VERSIONS:-}" ]]; then
  read -r -a versions <<<"$TEST_MATRIX_VERSIONS"
else
  mapfile -t versions < <(bash scripts/node-versions.sh list | sort -t. -k1,1nr -k2,2nr -k3,3nr)
fi
primary="$(bash scripts/node-versions.sh newest)"
START_S=$SECONDS
PASSED=0
FAILED=0
RECAP=()
LOGS="$(mktemp -d "${TMPDIR:-/tmp}/test-matrix.XXXXXX")"
trap 'rm -rf "$LOGS"' EXIT
trap 'echo "test-matrix: interrupted"; exit 130' INT TERM

for v in "${versions[@]}"; do
  if ! node_bin="$(bash scripts/node-versions.sh path "$v")"; then
    FAILED=$((FAILED + 1))
    RECAP+=("== Node $v: not at hand (scripts/node-versions.sh path $v failed)")
    continue
  fi
  variants="esm cjs"
  [[ "$v" == "$primary" ]] && variants="esm cjs lowest-peers newest-peers lowest-nest"
  echo
  echo "================================================================ Node $v: npm test"
  started=$SECONDS
  PATH="$(dirname "$node_bin"):$PATH" PACK_SMOKE_VARIANTS="${PACK_SMOKE_VARIANTS:-$variants}" npm test 2>&1 | tee "$LOGS/$v.log"
  rc=${PIPESTATUS[0]}
  took=$((SECONDS - started))
  RECAP+=("== Node $v: npm test exited $rc after $took s")
  run_failed=0
  while IFS= read -r line; do
    RECAP+=("$line")
    PASSED=$((PASSED + $(sed -E 's/^[a-z ]+: ([0-9]+) passed.*/\1/' <<<"$line")))
    run_failed=$((run_failed + $(sed -E 's/^[a-z ]+: [0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")))
  done < <(grep -E '^(jest|package smoke): [0-9]+ passed, [0-9]+ failed' "$LOGS/$v.log")
  # npm test stops at its first failing step (a build error prints no summary): a run that
  # exited non-zero counts as a failure even when no summary line says so.
  if [[ $rc -ne 0 && $run_failed -eq 0 ]]; then run_failed=1; fi
  FAILED=$((FAILED + run_failed))
done

echo
echo "================================================================ test matrix ($((SECONDS - START_S)) s)"
printf '%s\n' "${RECAP[@]}"
echo "matrix: $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
