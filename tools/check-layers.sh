#!/usr/bin/env bash
# Fails when host code includes a header of a folder above its own (see HOST_LAYERS in the
# Makefile), when a host include does not name its folder, or when guest code includes host
# code (the two sides share only proto/).
# usage: tools/check-layers.sh LAYER... (lowest first; "a/b" puts two folders side by side)
set -u
cd "$(dirname "$0")/.." || exit 1
declare -A rank
r=0
for group in "$@"; do
	IFS=/ read -ra names <<<"$group"
	for n in "${names[@]}"; do rank[$n]=$r; done
	r=$((r + 1))
done
bad=0
for f in $(git ls-files 'host/*.c' 'host/*.h'); do
	own=${f#host/}
	own=${own%%/*}
	[ -n "${rank[$own]+x}" ] || { echo "$f: folder host/$own is not a layer"; bad=1; continue; }
	while IFS=: read -r line inc; do
		inc=${inc#*\"}
		inc=${inc%\"*}
		dir=${inc%%/*}
		case "$inc" in
		*.pb-c.h | proto/*) continue ;; # generated code and wire facts: every layer
		esac
		if [ "$dir" = "$inc" ]; then
			echo "$f:$line: \"$inc\" does not name its folder"
			bad=1
		elif [ -z "${rank[$dir]+x}" ]; then
			echo "$f:$line: \"$inc\" is in no layer"
			bad=1
		elif [ "$dir" != "$own" ] && [ "${rank[$dir]}" -ge "${rank[$own]}" ]; then
			echo "$f:$line: host/$own may not use host/$dir (\"$inc\"): it is not below"
			bad=1
		fi
	done < <(grep -n '^#include "' "$f" | sed 's/:#include /:/')
done
if grep -n '^#include "[^"]*host/' $(git ls-files 'guest/*.c' 'guest/*.h') 2>/dev/null; then
	echo "guest code includes host code"
	bad=1
fi
[ "$bad" -eq 0 ] && echo "layers: ok ($*)"
exit "$bad"
