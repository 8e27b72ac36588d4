#!/usr/bin/env bash
# Run apt-get against a private configuration: its own sources, lists and cache below DIR,
# reusing the archive URI the machine's own apt sources already name. The machine's apt
# setup is never changed. Used to fetch Debian source packages (nanopb's runtime for the
# guest) and, later, packages from another suite.
#
# usage: tools/apt-private.sh DIR 'deb-src|deb' SUITE -- apt-get-args...
set -euo pipefail

die() { printf 'apt-private: fatal: %s\n' "$*" >&2; exit 1; }

[ $# -ge 4 ] && [ "$4" = -- ] || die "usage: $0 DIR 'deb-src|deb' SUITE -- apt-get-args..."
dir=$1 type=$2 suite=$3
shift 4

# The first Debian archive URI configured on this machine (deb822 or one-line format).
mirror_uri() {
	local f uri
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		uri=$(awk '/^URIs:/ { print $2; exit }' "$f")
		case "$uri" in */debian) echo "$uri"; return ;; esac
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		uri=$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ { print $2; exit }' "$f")
		[ -n "$uri" ] && { echo "$uri"; return; }
	done
	return 1
}

uri=$(mirror_uri) || die "no Debian archive URI found in /etc/apt/sources*"
mkdir -p "$dir/lists/partial" "$dir/archives/partial" "$dir/etc"
printf '%s %s %s main\n' "$type" "$uri" "$suite" >"$dir/etc/sources.list"
conf=(
	-o "Dir::Etc::SourceList=$dir/etc/sources.list"
	-o "Dir::Etc::SourceParts=/dev/null"
	-o "Dir::State::Lists=$dir/lists"
	-o "Dir::Cache=$dir"
	-o "Dir::Cache::archives=$dir/archives"
	-o "APT::Get::List-Cleanup=0"
)
# Refresh the private lists at most once a day.
stamp=$dir/lists/.updated
if [ -z "$(find "$stamp" -mmin -1440 2>/dev/null)" ]; then
	apt-get "${conf[@]}" -q update >/dev/null || die "apt-get update ($type $suite) failed"
	touch "$stamp"
fi
exec apt-get "${conf[@]}" "$@"
