#!/usr/bin/env bash
# make lint: nothing built is committed. Refuses a tracked file that is a
# compiled program (ELF, Mach-O or PE, whatever its name) and a tracked
# file over 1 MB that is not in allowed below (none is today: the largest,
# a go.sum, is under 200 KB).
# Usage: scripts/check-tracked.sh
set -euo pipefail
cd "$(dirname "$0")/.."
limit=$((1 << 20))
allowed=()
status=0
while IFS= read -r -d '' f; do
	[ -f "$f" ] || continue # deleted in the working tree, not yet in git
	case $(head -c 4 "$f" | od -An -tx1 | tr -d ' \n') in
	7f454c46 | cffaedfe | cefaedfe | feedfacf | feedface | 4d5a*)
		echo "$f is a compiled program: git rm --cached $f, and ignore it in .gitignore"
		status=1
		;;
	esac
	size=$(stat -c %s "$f")
	if [ "$size" -gt "$limit" ] && [[ " ${allowed[*]} " != *" $f "* ]]; then
		echo "$f is $size bytes, over 1 MB: keep it out of git, or add it to allowed in $0 with the reason"
		status=1
	fi
done < <(git ls-files -z)
exit "$status"
