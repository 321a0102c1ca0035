#!/usr/bin/env bash
# Install Go and Debian's grpc-go sources when missing: the benchmarks' kube-apiserver-like load generator
# (bench/go/kms-load) is a grpc-go client, built in GOPATH mode from Debian's packages (no module download).
# Idempotent. Only `npm run bench` needs it; `npm test` does not.
set -euo pipefail
if command -v go >/dev/null 2>&1 && [ -d /usr/share/gocode/src/google.golang.org/grpc ]; then
  go version
  exit 0
fi
. "$(dirname "$0")/apt-install.sh"
apt_install "Go is missing and apt-get is not available: install Go >= 1.19 and grpc-go (Debian: golang-go golang-google-grpc-dev), or run the benchmark with BENCH_KMS_CLIENT=grpc-js" golang-go golang-google-grpc-dev
go version
