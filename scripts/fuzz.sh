#!/usr/bin/env bash
# Runs every Go fuzz target of the repository, one after the other (one
# worker each, so the figures do not depend on the core count), and prints
# a table of target, time fuzzed and executions. A crash fails the run and
# leaves its input in the package's testdata/fuzz/<Target>/ (commit it with
# the fix: it then runs as a seed on every `go test`).
#
#   FUZZTIME=10m scripts/fuzz.sh              # every target, 10 minutes each
#   FUZZTIME=30s scripts/fuzz.sh ./internal/store/embedded   # one package
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10m}
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)

failed=0
printf '%-40s %-28s %8s %14s\n' package target time execs
for pkg in $(go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.Dir}}{{end}}' "${pkgs[@]}"); do
  rel=./${pkg#"$PWD"/}
  for target in $(grep -hoE '^func (Fuzz[A-Za-z0-9_]+)\(' "$pkg"/*_test.go | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/' | sort -u); do
    out=$(mktemp)
    start=$(date +%s)
    if ! go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" -fuzzminimizetime=10s -parallel=1 -timeout=0 "$rel" >"$out" 2>&1; then
      failed=1
      echo "FAIL $rel $target:" >&2
      grep -v '^fuzz: elapsed' "$out" | tail -20 >&2
    fi
    execs=$(grep -oE 'execs: [0-9]+' "$out" | tail -1 | awk '{print $2}' || true)
    printf '%-40s %-28s %7ss %14s\n' "$rel" "$target" $(( $(date +%s) - start )) "${execs:-?}"
    rm -f "$out"
  done
done
exit $failed
