#!/usr/bin/env bash
# Fails on any function of the product (host/, guest/) longer than MAX lines, as ctags
# measures it (from its signature to its closing brace), except the ones named.
# usage: tools/check-functions.sh MAX [FILE:FUNCTION ...]   (the exceptions)
set -u
cd "$(dirname "$0")/.." || exit 1
max=${1:?max lines}
shift
declare -A allowed
for e in "$@"; do allowed[$e]=1; done
command -v ctags >/dev/null || { echo "check-functions: ctags is missing (make deps)"; exit 1; }
bad=0
while IFS=$'\t' read -r name file len; do
	if [ -n "${allowed[$file:$name]+x}" ]; then
		continue
	fi
	echo "$file: $name is $len lines (the limit is $max; split it by job)"
	bad=1
done < <(ctags --c-kinds=f --fields=+ne -o - $(git ls-files 'host/*.c' 'guest/*.c') |
	awk -F'\t' -v max="$max" '{
		n = ""; e = ""
		for (i = 4; i <= NF; i++) {
			if ($i ~ /^line:/) n = substr($i, 6)
			if ($i ~ /^end:/) e = substr($i, 5)
		}
		if (n != "" && e != "" && e - n + 1 > max) printf "%s\t%s\t%d\n", $1, $2, e - n + 1
	}')
exit $bad
