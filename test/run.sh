#!/usr/bin/env bash
# The project's test command: type-check, then every test suite under Bun.
# Prints `N passed, N failed` alone on the last line.
set -u
cd "$(dirname "$0")/.."
BIN=node_modules/.bin
passed=0; failed=0

echo "== type-check (tsc --noEmit)"
if "$BIN/tsc" --noEmit -p tsconfig.json; then passed=$((passed+1)); else failed=$((failed+1)); fi

echo "== bun test"
log=$(mktemp)
"$BIN/bun" test "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
p=$(grep -Eo '^ *[0-9]+ pass' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
f=$(grep -Eo '^ *[0-9]+ fail' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
passed=$((passed+p)); failed=$((failed+f))
if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed+1)); fi
rm -f "$log"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
