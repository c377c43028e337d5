# Sourced by the benchmark drivers that print a table: `write_page PAGE RESULTS COMMAND` puts
# RESULTS (a file holding the table the driver printed) into PAGE's generated section with the
# lines that say where it came from: the command, the machine, the commit and the date. The
# section lies between two HTML comments (invisible on the rendered page); a rerun replaces only
# what is between them, so the prose above and below stays as written. A page without the markers
# gets the section at its end.
#
# The commit is `git rev-parse --short HEAD`, with `-dirty` when the working tree differs from it
# (a table measured on uncommitted code must not pass for the commit's); outside a git checkout
# (the GPU check's tarball) it says so.

# The machine in one line: CPU model, cores, memory, and each NVIDIA GPU nvidia-smi reports.
machine_line() {
  local cpu cores memory gpu
  cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
  cores=$(nproc)
  memory=$(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null)
  gpu=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | paste -sd ';' -) || gpu=""
  echo "${cpu:-unknown CPU}, $cores cores, ${memory:-unknown} memory; GPU: ${gpu:-none that nvidia-smi reports}"
}

commit_line() {
  local commit
  if commit=$(git rev-parse --short HEAD 2>/dev/null); then
    # Untracked files count too: a new source file changes what was built.
    [ -z "$(git status --porcelain 2>/dev/null)" ] || commit="$commit-dirty"
    echo "$commit"
  else
    echo "unknown (not run from a git checkout)"
  fi
}

write_page() { # PAGE RESULTS COMMAND
  local page=$1 results=$2 command=$3 begin end section
  begin="<!-- results: begin (written by the command below; a rerun replaces everything up to the end marker) -->"
  end="<!-- results: end -->"
  section=$(mktemp)
  {
    echo "$begin"
    echo "Command: \`$command\`  "
    echo "Machine: $(machine_line)  "
    echo "Commit: $(commit_line); date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    cat "$results"
    echo "$end"
  } >"$section"
  if grep -qF -- "<!-- results: begin" "$page" && grep -qF -- "$end" "$page"; then
    # Everything before the begin marker, the new section, everything after the end marker.
    awk -v section="$section" '
      /^<!-- results: begin/ { while ((getline line < section) > 0) print line; skipping = 1; next }
      skipping && /^<!-- results: end -->/ { skipping = 0; next }
      !skipping { print }
    ' "$page" >"$page.new"
  else
    { cat "$page"; echo; cat "$section"; } >"$page.new"
  fi
  mv "$page.new" "$page"
  rm -f "$section"
  echo "wrote the results section of $page" >&2
}
