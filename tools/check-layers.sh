#!/usr/bin/env bash
# The layer check, both sides. Code in a layer folder may use only the folders below it:
#   - by its includes: every product include names its folder ("base/err.h"), and that
#     folder is its own or below it; guest and host never include each other;
#   - by its symbols (when OBJDIR is given): no object uses a symbol defined in a folder that
#     is not below its own, so a local prototype cannot get around the includes;
#   - tests/ include product headers by their folder too, never by a "../" path.
# Untracked files are checked as well as tracked ones.
# usage: tools/check-layers.sh "HOST_ORDER" "GUEST_ORDER" [OBJDIR]
#   an ORDER lists folders lowest first; "a/b" puts two side by side (neither uses the other)
set -u
cd "$(dirname "$0")/.." || exit 1
host_order=${1:?host layer order}
guest_order=${2:?guest layer order}
objdir=${3:-}
bad=0
declare -A hrank grank

ranks() { # ORDER ARRAY
	local -n into=$2
	local r=0 group n names
	for group in $1; do
		IFS=/ read -ra names <<<"$group"
		for n in "${names[@]}"; do into[$n]=$r; done
		r=$((r + 1))
	done
}
ranks "$host_order" hrank
ranks "$guest_order" grank

files() { git ls-files --cached --others --exclude-standard "$@" | sort -u; }
includes() { grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$1" | sed -E 's/^([0-9]+):.*"([^"]*)".*/\1:\2/'; }
say() {
	echo "$1"
	bad=1
}

# One side's sources: ROOT RANKS SIDE-NAME
check_includes() {
	local root=$1 side=$3 f own line inc dir
	local -n rank=$2
	for f in $(files "$root/*.c" "$root/*.h"); do
		own=${f#"$root"/}
		own=${own%%/*}
		[ -n "${rank[$own]+x}" ] || { say "$f: folder $root/$own is not a layer"; continue; }
		while IFS=: read -r line inc; do
			dir=${inc%%/*}
			case "$inc" in
			*.pb-c.h | *.pb.h | proto/* | syscalls.h) continue ;; # generated, or wire facts
			esac
			if [ "$dir" = "$inc" ]; then
				say "$f:$line: \"$inc\" does not name its folder"
			elif [ -z "${rank[$dir]+x}" ]; then
				say "$f:$line: \"$inc\" is in no $side layer"
			elif [ "$dir" != "$own" ] && [ "${rank[$dir]}" -ge "${rank[$own]}" ]; then
				say "$f:$line: $root/$own may not use $root/$dir (\"$inc\"): it is not below"
			fi
		done < <(includes "$f")
	done
}

check_tests() {
	local f line inc
	for f in $(files 'tests/*.c' 'tests/*.h'); do
		while IFS=: read -r line inc; do
			case "$inc" in
			*../*) say "$f:$line: \"$inc\": include product headers by their folder" ;;
			*/*) ;;
			*) [ -e "$(dirname "$f")/$inc" ] || [ -e "tests/unit/$inc" ] ||
				[[ "$inc" == *.pb.h || "$inc" == *.pb-c.h ]] ||
				say "$f:$line: \"$inc\" does not name its folder" ;;
			esac
		done < <(includes "$f")
	done
}

# Objects by symbols: OBJROOT RANKS (objects in OBJROOT/<layer>/*.o)
check_symbols() {
	local root=$1 o sym layer def
	local -n rank=$2
	declare -A defined
	[ -d "$root" ] || return 0
	for o in "$root"/*/*.o; do
		layer=$(basename "$(dirname "$o")")
		[ -n "${rank[$layer]+x}" ] || continue
		for sym in $(nm -g --defined-only "$o" 2>/dev/null | awk 'NF == 3 { print $3 }'); do
			defined[$sym]=$layer
		done
	done
	for o in "$root"/*/*.o; do
		layer=$(basename "$(dirname "$o")")
		[ -n "${rank[$layer]+x}" ] || continue
		for sym in $(nm -u "$o" 2>/dev/null | awk '{ print $2 }'); do
			def=${defined[$sym]:-}
			[ -n "$def" ] && [ "$def" != "$layer" ] || continue
			[ "${rank[$def]}" -lt "${rank[$layer]}" ] ||
				say "${o#"$objdir"/}: uses $sym of $def/, which is not below $layer/"
		done
	done
}

check_includes host hrank host
check_includes guest/init grank guest
check_tests
if [ -n "$objdir" ]; then
	check_symbols "$objdir/host" hrank
	check_symbols "$objdir/guest/guest/init" grank
fi
[ "$bad" -eq 0 ] && echo "layers: ok (host: $host_order; guest: $guest_order)"
exit "$bad"
