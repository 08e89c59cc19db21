#!/usr/bin/env bash
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# timed.sh NAME COMMAND [ARG...]: print COMMAND, run it, then print one line with NAME, how it ended, its wall
# time and the CPU time (user + sys) of everything it waited for; exit with COMMAND's status.
# With TEST_TIMINGS set, the line is also appended to that file (`make test` prints them all at the end).
set -u
name=$1
shift
echo "== $name: $*"
start=$(date +%s)
"$@"
rc=$?
wall=$(($(date +%s) - start))
# `times` prints the shell's own user/sys times, then its children's (e.g. 1m2.345s 0m6.789s). It must
# run in this shell, not in a pipeline's subshell, which has no children of its own.
times_file=$(mktemp)
times >"$times_file"
cpu=$(tail -n 1 "$times_file" | awk '{
  total = 0
  for (i = 1; i <= 2; i++) { split($i, t, "m"); sub("s", "", t[2]); total += t[1] * 60 + t[2] }
  printf "%.0f", total }')
rm -f "$times_file"
if [ "$rc" = 0 ]; then result=passed; else result="FAILED (exit $rc)"; fi
line=$(printf '%-20s %-18s %5d s wall %5d s CPU   load %s' "$name" "$result" "$wall" "$cpu" "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)")
echo "== $line"
if [ -n "${TEST_TIMINGS:-}" ]; then
  echo "$line" >>"$TEST_TIMINGS"
fi
exit "$rc"
