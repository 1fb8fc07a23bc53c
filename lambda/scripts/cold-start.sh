#!/bin/sh
# Cold start of the Lambda binaries: time from process start to the first response through the
# mock Lambda Runtime API (the `runtime` tests, pointed at the optimised build), and the binary
# sizes. Needs java (DynamoDB Local) like the tests. Run from the repository root.
#
# The `lambda-release` profile (root Cargo.toml) is release + opt-level "s", fat LTO, one codegen unit,
# stripped: what `cargo lambda build --profile lambda-release` puts in the zip.
set -eu
: "${CARGO_TARGET_DIR:=/work/target-lambda}"
export CARGO_TARGET_DIR
# BIN_DIR: measure binaries built elsewhere, e.g. by
#   cargo lambda build --profile lambda-release --x86-64 --bin kairos-lambda --bin kairos-authorizer
# -> $CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/lambda-release (the bootstraps that go in the zips)
if [ -n "${BIN_DIR:-}" ]; then
  dir="$BIN_DIR"
else
  cargo build --profile lambda-release -p kairos-lambda --bins
  dir="$CARGO_TARGET_DIR/lambda-release"
fi
for b in kairos-lambda kairos-authorizer; do
  printf '%s: %s bytes (stripped)\n' "$b" "$(stat -c %s "$dir/$b")"
done
uptime
for i in 1 2 3 4 5; do
  KAIROS_LAMBDA_BIN_DIR="$dir" cargo test -p kairos-lambda --test lambda runtime:: -- --nocapture 2>&1 \
    | grep 'COLD START'
done
