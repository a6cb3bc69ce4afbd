#!/usr/bin/env bash
# Side-by-side speed against llama.cpp, the way issue 4's notes measure it: for every model and
# thread count, llama-bench then `hearth bench` on the same file (pp512 and tg128, one repetition
# each after their warm-ups), alternated ROUNDS times; prints both and the ratios.
#
#   bash scripts/side-by-side.sh [-t "1 2"] [-r ROUNDS] [-H path/to/hearth] MODEL.gguf...
#
# llama-bench comes from ../shared/reference/ (built once under ~/.cache/hearth-reference).
# The machines are noisy: compare ratios of alternated pairs, never absolute numbers of runs
# taken apart.
set -euo pipefail
threads="1 2"
rounds=2
hearth=target/release/hearth
while getopts "t:r:H:" o; do
  case $o in
    t) threads=$OPTARG ;;
    r) rounds=$OPTARG ;;
    H) hearth=$OPTARG ;;
    *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { echo "usage: $0 [-t \"1 2\"] [-r ROUNDS] [-H hearth] MODEL.gguf..." >&2; exit 2; }
ref=${HEARTH_REFERENCE:-$HOME/.cache/hearth-reference/bin}
[ -x "$ref/llama-bench" ] || { echo "no $ref/llama-bench: build it with ../shared/reference/" >&2; exit 1; }
[ -x "$hearth" ] || { echo "no $hearth: cargo build --release" >&2; exit 1; }
# The two t/s figures (pp512, tg128) of a markdown table.
speeds() { grep -E "pp512|tg128" | awk -F'|' '{print $(NF-1)}' | awk '{print $1}' | tr '\n' ' '; echo; }
printf "%-44s %2s %10s %10s %10s %10s %7s %7s\n" model t llama-pp hearth-pp llama-tg hearth-tg pp-x tg-x
for model in "$@"; do
  for t in $threads; do
    for _ in $(seq "$rounds"); do
      read -r lp lt < <(LD_LIBRARY_PATH=$ref "$ref/llama-bench" -m "$model" -p 512 -n 128 -t "$t" -r 1 -o md 2>/dev/null | speeds)
      read -r hp ht < <("$hearth" bench -m "$model" -p 512 -n 128 -t "$t" -r 1 2>/dev/null | speeds)
      printf "%-44s %2s %10s %10s %10s %10s %7.2f %7.2f\n" "$(basename "$model")" "$t" "$lp" "$hp" "$lt" "$ht" \
        "$(awk "BEGIN { print $hp / $lp }")" "$(awk "BEGIN { print $ht / $lt }")"
    done
  done
done
