#!/usr/bin/env bash
# Runs the libFuzzer targets built in bin/fuzz (make fuzz-build).
#
#   tools/fuzz.sh run SECONDS TARGET...    each target for SECONDS, from its committed corpus
#                                          (tests/fuzz/corpus/TARGET) into bin/fuzz/corpus/TARGET;
#                                          prints executions, coverage and findings per target
#   tools/fuzz.sh regress 0 TARGET...      each target over its committed corpus once (CI)
#
# A finding leaves its input in bin/fuzz/findings/TARGET/ and fails the run; fix the bug and
# commit the input under tests/fuzz/corpus/TARGET/ as a regression.
set -uo pipefail

mode=${1:?run|regress}
secs=${2:?seconds}
shift 2
top=$(cd "$(dirname "$0")/.." && pwd)
bin=$top/bin/fuzz
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_stack_use_after_return=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# The harnesses' scratch files (a share, sockets) live here and go with the run.
KUASAR_FUZZ_TMP=$(mktemp -d /tmp/kuasar-fuzz.XXXXXX)
export KUASAR_FUZZ_TMP
trap 'rm -rf --one-file-system "$KUASAR_FUZZ_TMP"' EXIT
failed=0

for t in "$@"; do
	seeds=$top/tests/fuzz/corpus/$t
	dict=$top/tests/fuzz/$t.dict
	opts=(-rss_limit_mb=2048 -max_len=65536)
	[ -f "$dict" ] && opts+=("-dict=$dict")
	mkdir -p "$seeds"
	if [ "$mode" = regress ]; then
		# -runs=0 executes the given inputs once each (and nothing else).
		if out=$("$bin/$t" "${opts[@]}" -runs=0 "$seeds" 2>&1); then
			echo "fuzz-regress $t: $(find "$seeds" -type f | wc -l) inputs ok"
		else
			echo "$out" | tail -30
			echo "fuzz-regress $t: FAILED"
			failed=1
		fi
		continue
	fi
	work=$bin/corpus/$t
	findings=$bin/findings/$t
	mkdir -p "$work" "$findings"
	log=$bin/$t.log
	"$bin/$t" "${opts[@]}" -max_total_time="$secs" -print_final_stats=1 \
		-artifact_prefix="$findings/" "$work" "$seeds" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
	echo "fuzz $t: ${execs:-?} executions in ${secs}s, ${cov:-cov: ?}, corpus $(find "$work" -type f | wc -l) inputs, $([ $rc -eq 0 ] && echo 'no finding' || echo "FINDING (exit $rc): see $log and $findings")"
	[ $rc -eq 0 ] || failed=1
done
exit $failed
