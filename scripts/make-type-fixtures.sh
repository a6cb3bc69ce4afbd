#!/usr/bin/env bash
# Makes tests/fixtures/types/: llama.cpp's greedy generations on requantized copies of the test
# models, one per weight type, for tests/weight_types.rs. For maintainers, not CI: it needs the
# reference llama.cpp build (refdump, llama-quantize) and python's `gguf` package.
#
# For each variant it
#   1. writes the requantized model with hearth (`cargo run --release --example requantize`);
#   2. writes the same variant with `llama-quantize --allow-requantize --pure` (when llama-quantize
#      can: not for the untied variant) and requires the tensors to be byte-identical (names,
#      types, shapes, bytes) and the metadata equal; a digest of the tensor data goes into
#      NAME.meta.json, so the test can hold hearth's requantizer to llama-quantize's bytes;
#   3. runs `refdump gen` on hearth's file (2 prompts x 24 steps) and keeps the full-vocabulary
#      logits after the first prompt.
#
# usage: scripts/make-type-fixtures.sh [VARIANT...]   (default: all; see VARIANTS below)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MODELS="${HEARTH_MODELS:-$HOME/.cache/hearth/models}"
REF="${HEARTH_REFERENCE:-$HOME/.cache/hearth-reference}/bin"
OUT="$ROOT/tests/fixtures/types"
STEPS=24
# The prompts of the fixture: the first and the last of the generation fixtures (plain text and
# the chat template), one per line with \n escapes as refdump reads them.
PROMPT_SOURCE="$ROOT/tests/fixtures/generation/SmolLM2-135M-Instruct.Q4_1.json"

# name:model:type[:output type]. The untied variant adds output.weight to the tied SmolLM2.
VARIANTS=(
  "SmolLM2-135M-Instruct.Q4_0:SmolLM2-135M-Instruct.Q4_1:Q4_0"
  "SmolLM2-135M-Instruct.Q5_0:SmolLM2-135M-Instruct.Q4_1:Q5_0"
  "SmolLM2-135M-Instruct.Q5_1:SmolLM2-135M-Instruct.Q4_1:Q5_1"
  "SmolLM2-135M-Instruct.Q8_0:SmolLM2-135M-Instruct.Q4_1:Q8_0"
  "SmolLM2-135M-Instruct.Q2_K:SmolLM2-135M-Instruct.Q4_1:Q2_K"
  "SmolLM2-135M-Instruct.Q3_K:SmolLM2-135M-Instruct.Q4_1:Q3_K"
  "SmolLM2-135M-Instruct.Q5_K:SmolLM2-135M-Instruct.Q4_1:Q5_K"
  "SmolLM2-135M-Instruct.Q6_K:SmolLM2-135M-Instruct.Q4_1:Q6_K"
  "SmolLM2-135M-Instruct.IQ4_NL:SmolLM2-135M-Instruct.Q4_1:IQ4_NL"
  "SmolLM2-135M-Instruct.IQ4_XS:SmolLM2-135M-Instruct.Q4_1:IQ4_XS"
  "SmolLM2-135M-Instruct.F16:SmolLM2-135M-Instruct.Q4_1:F16"
  "SmolLM2-135M-Instruct.BF16:SmolLM2-135M-Instruct.Q4_1:BF16"
  "SmolLM2-135M-Instruct.Q4_0-output-F16:SmolLM2-135M-Instruct.Q4_1:Q4_0:F16"
)
if [ $# -gt 0 ]; then
  wanted=("$@")
  selected=()
  for v in "${VARIANTS[@]}"; do
    for w in "${wanted[@]}"; do [ "${v%%:*}" = "$w" ] && selected+=("$v"); done
  done
  VARIANTS=("${selected[@]}")
fi

for tool in "$REF/refdump" "$REF/llama-quantize"; do
  [ -x "$tool" ] || { echo "missing $tool (see /work/shared/reference)" >&2; exit 1; }
done
python3 -c 'import gguf' || { echo "python package gguf missing (pip install gguf)" >&2; exit 1; }

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT"

python3 - "$PROMPT_SOURCE" > "$TMP/prompts.txt" <<'EOF'
import json, sys
cases = json.load(open(sys.argv[1]))
for c in (cases[0], cases[-1]):
    print(c["prompt"].replace("\\", "\\\\").replace("\n", "\\n"))
EOF

# Compares two GGUF files tensor by tensor and key by key; prints a digest of the first one's
# tensors (sha256 of each tensor's first and last 4 KiB, or all of it when smaller, in name order;
# tests/weight_types.rs computes the same). Exit status 1 if they differ.
cat > "$TMP/compare.py" <<'EOF'
import hashlib, sys, gguf

def load(path):
    r = gguf.GGUFReader(path)
    return r, {t.name: t for t in r.tensors}

def kv(r):
    return {k: [bytes(f.parts[i]).hex() for i in f.data]
            for k, f in r.fields.items() if not k.startswith("GGUF.")}

ra, ta = load(sys.argv[1])
h = hashlib.sha256()
for n in sorted(ta):
    b = ta[n].data.tobytes()
    h.update(b if len(b) <= 8192 else b[:4096] + b[-4096:])
print(h.hexdigest())
if len(sys.argv) > 2:
    rb, tb = load(sys.argv[2])
    bad = sorted(set(ta) ^ set(tb))
    for n in sorted(set(ta) & set(tb)):
        x, y = ta[n], tb[n]
        if (x.tensor_type != y.tensor_type or x.shape.tolist() != y.shape.tolist()
                or x.data.tobytes() != y.data.tobytes()):
            bad.append(n)
    ka, kb = kv(ra), kv(rb)
    keys = sorted(k for k in set(ka) | set(kb) if ka.get(k) != kb.get(k))
    if bad or keys:
        print(f"differ from llama-quantize: tensors {bad[:10]} ({len(bad)}), keys {keys}",
              file=sys.stderr)
        sys.exit(1)
EOF

# REQUANTIZE=path/to/requantize skips the build (the example, built elsewhere).
if [ -z "${REQUANTIZE:-}" ]; then
  (cd "$ROOT" && cargo build --release --example requantize)
  REQUANTIZE="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/requantize"
fi

for v in "${VARIANTS[@]}"; do
  IFS=: read -r name model ty out_ty <<< "$v"
  src="$MODELS/$model.gguf"
  ours="$TMP/$name.gguf"
  echo "== $name" >&2
  if [ -n "${out_ty:-}" ]; then
    "$REQUANTIZE" "$src" "$ours" "$ty" --output "$out_ty"
    sha="$(python3 "$TMP/compare.py" "$ours")"
    checked=false
  else
    "$REQUANTIZE" "$src" "$ours" "$ty"
    "$REF/llama-quantize" --allow-requantize --pure "$src" "$TMP/llama.gguf" "$ty" > "$TMP/quantize.log" 2>&1 \
      || { cat "$TMP/quantize.log" >&2; exit 1; }
    sha="$(python3 "$TMP/compare.py" "$ours" "$TMP/llama.gguf")"
    checked=true
    rm -f "$TMP/llama.gguf"
  fi
  mkdir -p "$TMP/logits" "$OUT/$name"
  rm -f "$TMP/logits"/*
  "$REF/refdump" gen "$ours" "$TMP/prompts.txt" "$STEPS" "$TMP/logits" > "$OUT/$name.json" 2> "$TMP/refdump.log" \
    || { cat "$TMP/refdump.log" >&2; exit 1; }
  cp "$TMP/logits/logits_p0.f32" "$OUT/$name/logits_p0.f32"
  printf '{"model": "%s", "type": "%s", "output": %s, "tensor_sample_sha256": "%s", "equals_llama_quantize": %s}\n' \
    "$model" "$ty" "$([ -n "${out_ty:-}" ] && echo "\"$out_ty\"" || echo null)" "$sha" "$checked" \
    > "$OUT/$name.meta.json"
  rm -f "$ours"
done
du -sh "$OUT" >&2
