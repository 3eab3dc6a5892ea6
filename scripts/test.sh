#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, builds, runs every test and ends with
# one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

need=()
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages: ${need[*]}"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
      || { echo "apt-get install ${need[*]} failed"; exit 1; }
  else
    echo "missing: ${need[*]} — install them (Debian: apt-get install ${need[*]}); the tests that use them will fail"
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund || exit 1
fi
npm run build --silent || exit 1
# Tests are TypeScript too: a type error in a test is a failure, not something vitest would quietly run past.
npm run typecheck --silent || exit 1

mkdir -p test-results
rm -f test-results/vitest.json
npx vitest run --reporter=default --reporter=json --outputFile.json=test-results/vitest.json "$@"
status=$?

node -e '
  const fs = require("node:fs")
  let r
  try { r = JSON.parse(fs.readFileSync("test-results/vitest.json", "utf8")) } catch { console.log("0 passed, 1 failed"); process.exit(0) }
  // A test file that fails to load has no test results but must not count as green.
  const brokenFiles = r.testResults.filter(f => f.status === "failed" && f.assertionResults.length === 0).length
  const skipped = r.numPendingTests + r.numTodoTests
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests + brokenFiles} failed` + (skipped ? `, ${skipped} skipped` : ""))
'
exit $status
