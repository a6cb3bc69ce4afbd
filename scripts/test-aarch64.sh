#!/usr/bin/env bash
# Builds the compute crates for aarch64 Linux and runs their tests under qemu-user: the quant
# formats, the kernel tables (the NEON sets against the scalar reference) and the model crate (GGUF, tokenizer,
# ops) exactly as an ARM laptop or a Raspberry Pi would run them.
# Needs (installed when missing, Debian/Ubuntu): qemu-user, gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross, and the rust target aarch64-unknown-linux-gnu.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v qemu-aarch64 >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null; then
  sudo=""; [[ $(id -u) == 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq qemu-user gcc-aarch64-linux-gnu \
    libc6-dev-arm64-cross >/dev/null
fi
rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
# `-cpu max`: the emulated CPU has every extension qemu knows (dotprod, i8mm, fp16...), so both
# NEON kernel sets (`neon-dotprod` and `neon`) are available and tested.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -cpu max -L /usr/aarch64-linux-gnu"
cargo test --target aarch64-unknown-linux-gnu -p hearth-quant -p hearth-simd -p hearth-models "$@"
