#!/usr/bin/env bash
# render_test.sh DIR PAGE... -- each rendered page formats with no groff warning and opens
# with man -l (77, skipped, when scdoc was not there to render them).
dir=$1
shift
fail=0
for page in "$@"; do
  f=$dir/$page
  if [[ ! -f $f ]]; then
    command -v scdoc >/dev/null || { echo "scdoc not installed: pages not rendered"; exit 77; }
    echo "FAIL: $page was not rendered"; fail=1; continue
  fi
  warnings=$(groff -man -ww -z "$f" 2>&1)
  [[ -z $warnings ]] || { echo "FAIL: $page: groff says: $warnings"; fail=1; }
  lines=$(MANWIDTH=80 man -l "$f" 2>/dev/null | wc -l)
  ((lines > 10)) || { echo "FAIL: $page: man -l printed $lines lines"; fail=1; }
  echo "$page: $lines lines"
done
exit $fail
