#!/usr/bin/env bash
# Adds up what scripts/test.sh's suites reported. Reads, from the folder it is given, each
# suite's output NAME.log and exit status NAME.status, for NAME in vitest (Vitest, verbose
# reporter), cargo (`cargo test --no-fail-fast`), bench (test.sh's smoke run of
# benchmarks/vs-pytorch/run.sh, which ends its log with a verdict line) and e2e (WebdriverIO's spec
# reporter), and `skips`, the Rust tests that returned early for want of something on this machine
# (`name<TAB>reason` lines, written by tests/common/skip.rs). Prints
#   total: N passed, M failed, K skipped
#   skipped: NAME: REASON   (one line per skipped test: Vitest's skipped and todo, libtest's
#                            ignored, mocha's skipped and pending, the recorded skips)
#   failed: SUITE: WHY      (one line per suite or test binary that failed without reporting a
#                            failed test: crashed, killed, did not build, or printed no summary)
# and exits 1 when M > 0. Only each runner's own summary lines count, matched in its own log and
# anchored, so a line the app or a test prints cannot pass for one. A recorded skip passed as far
# as libtest knows: it moves from passed to skipped.
#
#   scripts/count-tests.sh DIR
#   scripts/count-tests.sh --self-check    # the counting against the logs in scripts/count-tests/
set -euo pipefail

if [ "${1:-}" = --self-check ]; then
  here="$(dirname "$0")/count-tests"
  expected=$(cat "$here/expected")
  # The logs hold failures, so the count must also exit 1.
  status=0
  actual=$("$0" "$here") || status=$?
  [ "$actual" = "$expected" ] && [ "$status" = 1 ] ||
    { diff <(echo "$expected") <(echo "$actual") >&2; echo "count-tests.sh: self-check failed (exit status $status)" >&2; exit 1; }
  echo "count-tests.sh: self-check passed"
  exit
fi
dir=${1:?usage: scripts/count-tests.sh DIR (see the comment at the top)}

# Each suite's parser prints `count<TAB>passed<TAB>failed<TAB>skipped`, then one
# `skipped<TAB>name<TAB>reason` or `failed<TAB>name<TAB>why` line per item it names.
parse() {
  local name=$1 program=$2 status log="$dir/$1.log"
  if [ ! -f "$dir/$name.status" ]; then
    printf 'count\t0\t1\t0\nfailed\t%s\tdid not run\n' "$name"
    return
  fi
  status=$(cat "$dir/$name.status")
  # Colour codes would split the anchored patterns.
  if [ -f "$log" ]; then sed 's/\x1b\[[0-9;]*m//g' "$log"; fi | awk -v suite="$name" -v status="$status" "$program"'
    END {
      if (!summary) { failed++; print "failed\t" suite "\tprinted no summary (exit status " status ")" }
      else if (status != 0 && failed == 0) {
        failed++; print "failed\t" suite "\texited with status " status " but reported no failed test"
      }
      print "count\t" passed + 0 "\t" failed + 0 "\t" skipped + 0
    }'
}

# Vitest prints one summary, last: `      Tests  1 failed | 2 passed | 2 skipped | 1 todo (6)`. A
# test's console output can hold the same words, so only the last such line counts.
vitest='
  /^ +Tests +[0-9]/ { summary = $0 }
  /^ +↓ / {
    test = $0; sub(/^ +↓ /, "", test); sub(/ [0-9]+ms$/, "", test)
    skips[++named] = test
  }
  END {
    if (summary) {
      sub(/^ +Tests +/, "", summary); sub(/ \([0-9]+\)$/, "", summary)
      parts = split(summary, part, / \| /)
      for (i = 1; i <= parts; i++) {
        split(part[i], word, " ")
        if (word[2] == "passed") passed += word[1]
        else if (word[2] == "failed") failed += word[1]
        else if (word[2] == "skipped" || word[2] == "todo") skipped += word[1]
      }
    }
    for (i = 1; i <= named; i++) print "skipped\t" skips[i] "\tskipped in Vitest (it.skip, it.todo or context.skip)"
  }'

# libtest prints `test result: ...` last for each binary cargo runs, after the binary's
# `     Running ...` line (the last one counts: a failed test's captured output, shown before it,
# can hold the same words). A binary that crashed printed none: its tests reported so far count,
# and the crash counts as one failure, named with cargo's `to rerun pass` argument and the cause
# cargo gives after `Caused by:`.
cargo='
  function close_binary() {
    if (binary == "") return
    if (result != "") {
      for (i = 1; i < fields; i++) {
        if (field[i + 1] ~ /^passed;/) passed += field[i]
        if (field[i + 1] ~ /^failed;/) failed += field[i]
        if (field[i + 1] ~ /^ignored;/) skipped += field[i]
      }
    } else {
      passed += oks; failed += fails + 1; skipped += ignores
      print "failed\tcargo test " (rerun != "" ? rerun : binary) "\tno `test result:` line, " \
        "crashed after " oks + fails + ignores " of its tests reported" (cause != "" ? " (" cause ")" : "")
    }
    binary = ""
  }
  /^     Running / {
    close_binary()
    binary = $0; sub(/^     Running /, "", binary)
    result = rerun = cause = ""; oks = fails = ignores = 0; summary = 1
  }
  binary != "" && /^test result: / { result = $0; fields = split(result, field, " ") }
  binary != "" && /^test .* \.\.\. ok$/ { oks++ }
  binary != "" && /^test .* \.\.\. FAILED$/ { fails++ }
  binary != "" && /^test .* \.\.\. ignored(, .*)?$/ {
    ignores++
    test = $0; sub(/^test /, "", test); sub(/ \.\.\. ignored.*$/, "", test)
    reason = $0; sub(/^.* \.\.\. ignored(, )?/, "", reason)
    print "skipped\t" test "\t" (reason != "" ? reason : "#[ignore] without a reason")
  }
  binary != "" && /^error: test failed, to rerun pass / { rerun = $0; sub(/^error: test failed, to rerun pass /, "", rerun); gsub(/`/, "", rerun) }
  binary != "" && /^  process didn.t exit successfully: .*\)$/ { cause = $0; sub(/^.*` \(/, "", cause); sub(/\)$/, "", cause) }
  END { close_binary() }'

# test.sh ends the smoke run's log with `bench-vs-pytorch smoke run: passed`, `... failed: WHY` or
# `... skipped: WHY`.
bench='
  /^bench-vs-pytorch smoke run: / { summary = $0; sub(/^bench-vs-pytorch smoke run: /, "", summary) }
  END {
    if (summary == "passed") passed++
    else if (summary ~ /^failed: /) { failed++; sub(/^failed: /, "", summary); print "failed\tbench-vs-pytorch smoke run\t" summary }
    else if (summary ~ /^skipped: /) { skipped++; sub(/^skipped: /, "", summary); print "skipped\tbench-vs-pytorch smoke run\t" summary }
    else if (summary) { failed++; print "failed\tbench-vs-pytorch smoke run\tunknown verdict: " summary }
  }'

# WebdriverIO's spec reporter prefixes every line of its report with `[BROWSER #WORKER]` and ends
# each worker's list of tests with `N passing (TIME)`, `N failing`, `N skipped`, `N pending`. The
# tests it lists between a spec file's `» FILE` line and those counts are marked `-` when skipped
# and `?` when pending.
e2e='
  /^\[[^]]*#[0-9]+-[0-9]+\] *» / { listing = 1; spec = $0; sub(/^\[[^]]*\] *» /, "", spec) }
  /^\[[^]]*#[0-9]+-[0-9]+\] [0-9]+ (passing|failing|skipped|pending)( \(.*\))?$/ {
    listing = 0; summary = 1
    line = $0; sub(/^\[[^]]*\] /, "", line); split(line, word, " ")
    if (word[2] == "passing") passed += word[1]
    else if (word[2] == "failing") failed += word[1]
    else skipped += word[1]
  }
  listing && /^\[[^]]*#[0-9]+-[0-9]+\] +[-?] / {
    test = $0; sub(/^\[[^]]*\] +[-?] /, "", test)
    print "skipped\t" spec " > " test "\tskipped in mocha (it.skip or this.skip())"
  }'

{
  parse vitest "$vitest"
  parse cargo "$cargo"
  parse bench "$bench"
  parse e2e "$e2e"
  # The recorded skips passed as far as libtest knows.
  if [ -s "$dir/skips" ]; then
    awk -F '\t' '{ print "skipped\t" $1 "\t" $2; moved++ } END { print "count\t" (-moved) "\t0\t" moved }' "$dir/skips"
  fi
} | awk -F '\t' '
  $1 == "count" { passed += $2; failed += $3; skipped += $4; next }
  $1 == "skipped" { skips[++s] = "skipped: " $2 ": " $3; next }
  $1 == "failed" { failures[++f] = "failed: " $2 ": " $3; next }
  END {
    printf "total: %d passed, %d failed, %d skipped\n", passed, failed, skipped
    for (i = 1; i <= s; i++) print skips[i]
    for (i = 1; i <= f; i++) print failures[i]
    exit (failed > 0 ? 1 : 0)
  }'
