#!/usr/bin/env bash
# Runs the unit tests and the bats suites, then prints one closing line for the whole run:
# "test: N passed, N failed, N skipped".
# A test binary must end with its TAP plan and run as many tests as it planned: one that
# crashes or stops early fails, whatever it printed before.
# usage: tools/test.sh [unit|bats|all]   (TESTBIN: where the unit test binaries are)
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
testbin=${TESTBIN:-bin/tests}

pass=0 fail=0 skip=0

# tally NAME: reads TAP on stdin, echoes it, counts it, and checks the plan.
tally() {
	local name=$1 line planned=-1 seen=0 failed=0
	while IFS= read -r line; do
		printf '%s\n' "$line"
		case "$line" in
		"ok "*"# SKIP"* | "ok "*"# skip"*) skip=$((skip + 1)) seen=$((seen + 1)) ;;
		"ok "*) pass=$((pass + 1)) seen=$((seen + 1)) ;;
		"not ok "*) fail=$((fail + 1)) failed=$((failed + 1)) seen=$((seen + 1)) ;;
		1..*) planned=${line#1..} planned=${planned%% *} ;;
		"# exit "*)
			# A failing test already makes the runner exit non-zero; the exit counts on
			# its own only when no test failed (the runner itself died or broke).
			line=${line#"# exit "}
			if [ "$line" != 0 ] && [ "$failed" -eq 0 ]; then
				echo "not ok - $name exited with status $line"
				fail=$((fail + 1)) failed=1
			fi
			;;
		esac
	done
	if [ "$failed" -gt 0 ]; then
		: # already counted as failing; one count per broken binary
	elif [ "$planned" -lt 0 ]; then
		echo "not ok - $name printed no TAP plan (it stopped early)"
		fail=$((fail + 1))
	elif [ "$seen" -ne "$planned" ]; then
		echo "not ok - $name planned $planned tests and ran $seen"
		fail=$((fail + 1))
	fi
}

what=${1:-all}
if [ "$what" != bats ]; then
	for t in "$testbin"/test-*; do
		[ -x "$t" ] || continue
		echo "# unit: $t"
		tally "$t" < <("$t" 2>&1; echo "# exit $?")
	done
fi
unit_pass=$pass unit_fail=$fail unit_skip=$skip
if [ "$what" != unit ]; then
	echo "# bats: tests/bats"
	tally bats < <(bats --tap tests/bats 2>&1; echo "# exit $?")
fi
echo "unit: $unit_pass passed, $unit_fail failed, $unit_skip skipped"
[ "$what" = unit ] ||
	echo "bats: $((pass - unit_pass)) passed, $((fail - unit_fail)) failed, $((skip - unit_skip)) skipped"
[ "$what" = unit ] || echo "test: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
