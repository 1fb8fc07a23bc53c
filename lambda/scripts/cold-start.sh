#!/bin/sh
# Cold start of the release binaries: time from process start to the first response through the
# mock Lambda Runtime API (the `runtime` tests, pointed at the release build), and the stripped
# binary sizes. Needs java (DynamoDB Local) like the tests. Run from the repository root.
set -eu
: "${CARGO_TARGET_DIR:=/work/target-lambda}"
export CARGO_TARGET_DIR
cargo build --release -p kairos-lambda --bins
out=$(mktemp -d)
for b in kairos-lambda kairos-authorizer; do
  cp "$CARGO_TARGET_DIR/release/$b" "$out/$b"
  strip "$out/$b"
  printf '%s: %s bytes unstripped, %s bytes stripped\n' "$b" \
    "$(stat -c %s "$CARGO_TARGET_DIR/release/$b")" "$(stat -c %s "$out/$b")"
done
# the stripped binaries are the ones measured (as in the Lambda zip)
for i in 1 2 3; do
  KAIROS_LAMBDA_BIN_DIR="$out" cargo test -p kairos-lambda --test lambda runtime:: -- --nocapture 2>&1 \
    | grep 'COLD START'
done
rm -rf "$out"
