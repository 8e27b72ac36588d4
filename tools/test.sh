#!/usr/bin/env bash
# Runs the unit tests and the bats suites, then prints one closing line for the whole run:
# "test: N passed, N failed".
# usage: tools/test.sh [unit|bats|all]
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1

tally() { # reads TAP, echoes it, leaves counts in $pass $fail
	local line
	while IFS= read -r line; do
		printf '%s\n' "$line"
		case "$line" in
		"ok "*) pass=$((pass + 1)) ;;
		"not ok "*) fail=$((fail + 1)) ;;
		esac
	done
}

what=${1:-all}
pass=0 fail=0
if [ "$what" != bats ]; then
	for t in bin/tests/test-*; do
		[ -x "$t" ] || continue
		echo "# unit: $t"
		# A test binary that crashes before its plan counts as a failure.
		tally < <("$t" 2>&1 || echo "not ok - $t exited with status $?")
	done
fi
unit_pass=$pass unit_fail=$fail
if [ "$what" != unit ]; then
	echo "# bats: tests/bats"
	tally < <(bats --tap tests/bats 2>&1)
fi
echo "unit: $unit_pass passed, $unit_fail failed"
echo "bats: $((pass - unit_pass)) passed, $((fail - unit_fail)) failed"
echo "test: $pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
