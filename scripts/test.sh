#!/usr/bin/env bash
# The project's test command: installs dependencies, checks formatting and lints, then runs
# every test (unit tests, end-to-end FUSE tests against kernel overlayfs, bench smoke test).
# Root/FUSE tests skip with a printed reason when not root; with CI=true they must run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --release
cargo test --workspace --release
