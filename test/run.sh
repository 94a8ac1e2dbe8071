#!/usr/bin/env bash
# The project's test command: type-check, every test suite under Bun (including the compiled
# binary's, test/binary), then the Deno suite (test/deno).
# Prints `N passed, N failed` alone on the last line.
set -u
cd "$(dirname "$0")/.."
BIN=node_modules/.bin
passed=0; failed=0

echo "== type-check (tsc --noEmit)"
if "$BIN/tsc" --noEmit -p tsconfig.json; then passed=$((passed+1)); else failed=$((failed+1)); fi

# The sandbox checks of deploy/dutygate.service (test/binary/systemd.test.ts) need these tools
# from Debian; install them when missing and possible, otherwise those checks say why they skip.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! { command -v systemd-analyze && command -v strace && command -v cc; } >/dev/null; then
  echo "== installing systemd, strace, gcc (sandbox checks of the systemd unit)"
  timeout 600 sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd strace gcc libc6-dev' >/dev/null 2>&1 || echo "could not install them; the sandbox checks will be skipped"
fi

# The playground's browser test (test/browser/play.test.ts) drives Debian's headless Chromium;
# install it when missing and possible. Without it that test is skipped, and under CI=true it fails.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! command -v chromium >/dev/null; then
  echo "== installing chromium, fonts-dejavu-core (the playground's browser test)"
  timeout 900 sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core' >/dev/null 2>&1 || echo "could not install chromium; the browser test will be skipped (and fail under CI=true)"
fi

# The shared-ledger tests (src/ledger/postgres.test.ts, test/e2e/fleet.test.ts) run a real
# PostgreSQL 15 server from Debian's packages; install it when missing and possible. Without it
# they say why they skip, and under CI=true they fail instead.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ ! -x /usr/lib/postgresql/15/bin/postgres ]; then
  echo "== installing postgresql (the shared-ledger tests)"
  timeout 600 sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql' >/dev/null 2>&1 || echo "could not install postgresql; the PostgreSQL tests will say why they skip (and fail under CI=true)"
fi

echo "== bun test"
log=$(mktemp)
"$BIN/bun" test "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
p=$(grep -Eo '^ *[0-9]+ pass' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
f=$(grep -Eo '^ *[0-9]+ fail' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
passed=$((passed+p)); failed=$((failed+f))
if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed+1)); fi
rm -f "$log"

echo "== deno test (test/deno: the same source under Deno)"
log=$(mktemp)
NO_COLOR=1 "$BIN/deno" task test:deno 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# `ok | 4 passed (4 steps) | 0 failed`: tests and their steps both count.
summary=$(grep -E '[0-9]+ passed.*[0-9]+ failed' "$log" | tail -1)
p=$(echo "$summary" | grep -Eo '[0-9]+ passed' | grep -Eo '[0-9]+' || echo 0)
s=$(echo "$summary" | grep -Eo '\(([0-9]+) steps?\)' | grep -Eo '[0-9]+' || echo 0)
f=$(echo "$summary" | grep -Eo '[0-9]+ failed' | grep -Eo '[0-9]+' || echo 0)
passed=$((passed+${p:-0}+${s:-0})); failed=$((failed+${f:-0}))
if [ "$status" -ne 0 ] && [ "${f:-0}" -eq 0 ]; then failed=$((failed+1)); fi
rm -f "$log"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
