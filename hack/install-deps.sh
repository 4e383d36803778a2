#!/usr/bin/env bash
# Installs what maskmesh needs to build and test on Debian bookworm, only what is missing.
# Usage: hack/install-deps.sh [build|bench|kafka|cluster|all]   (default: build)
# kafka: what the stream tests and bench run beside maskmesh-stream: Java and Maven (the
# broker's jars and the Kafka Streams baseline come from Maven Central) and the independent
# Python client (confluent-kafka, from PyPI).
# cluster: what the local Kubernetes node of hack/cluster-up.sh runs besides the components
# built from Go modules (hack/k8s/build.sh): etcd, containerd, runc, CNI plugins, the tools the
# scripts use (openssl, iptables, nftables, iproute2, conntrack), ipset for kube-router and
# busybox-static for the e2e client image.
set -euo pipefail

build_pkgs=(build-essential pkg-config clang libclang-rt-14-dev valgrind python3 openssl curl
            libmicrohttpd-dev libcurl4-openssl-dev libssl-dev libjson-c-dev libyaml-dev
            libcmocka-dev libpcre2-dev zlib1g-dev libgnutls28-dev
            nghttp2-server  # nghttpd: a real HTTP/2 server for lib/k8s's h2 test
            libnghttp2-dev  # the sidecar's HTTP/2 (lib/proxy/h2*.c)
            nghttp2-client  # h2load: the sidecar's HTTP/2 load test and bench
            python3-h2      # raw HTTP/2 frames for the sidecar's h2 tests (Debian's python3)
            python3-cryptography  # AES-SIV and HKDF outside OpenSSL: test_reveal checks tokens
            python3-websockets  # the WebSocket client and server test_proxy_ws drives (PyPI websockets 10.4)
            librdkafka-dev  # maskmesh-stream's Kafka client
            protobuf-compiler libprotobuf-dev) # protoc and its well-known types: gRPC tests' descriptor sets
bench_pkgs=(wrk nginx-light nodejs
            libsimdjson-dev g++ # bench/simdjson-count.cpp: a SIMD JSON parser's own figure
            strace)             # bench/proxy_perreq.sh: system calls per request
kafka_pkgs=(openjdk-17-jdk-headless maven)
cluster_pkgs=(etcd-server containerd runc containernetworking-plugins iptables nftables iproute2
              conntrack ethtool socat util-linux mount openssl curl ca-certificates ipset
              busybox-static)
# the tests' own Kafka client, independent of librdkafka-dev's version (its wheel bundles one)
kafka_pip=confluent-kafka==2.6.1

want=("${build_pkgs[@]}")
case "${1:-build}" in
    build) ;;
    bench) want=("${bench_pkgs[@]}" "${kafka_pkgs[@]}") ;;
    kafka) want=("${kafka_pkgs[@]}") ;;
    cluster) want=("${cluster_pkgs[@]}") ;;
    all)   want+=("${bench_pkgs[@]}" "${kafka_pkgs[@]}" "${cluster_pkgs[@]}") ;;
    *) echo "usage: $0 [build|bench|kafka|cluster|all]" >&2; exit 2 ;;
esac

# the gRPC tests' independent protobuf implementation (encodes and decodes their messages) and
# their test service (grpcio)
grpc_pip=(protobuf==7.36.2 grpcio==1.85.4)
if ! python3 -c 'import google.protobuf, grpc' 2>/dev/null; then
    echo "install-deps: pip install ${grpc_pip[*]}" >&2
    python3 -m pip install -q --disable-pip-version-check "${grpc_pip[@]}" >&2
fi

case "${1:-build}" in
    bench|kafka|all)
        if ! python3 -c 'import confluent_kafka' 2>/dev/null; then
            echo "install-deps: pip install $kafka_pip" >&2
            python3 -m pip install -q --disable-pip-version-check "$kafka_pip" >&2
        fi ;;
esac

missing=()
for p in "${want[@]}"; do
    # nodejs may come from another repository; any working node counts
    if [ "$p" = nodejs ] && command -v node >/dev/null 2>&1; then continue; fi
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt (a second make, unattended-upgrades) instead of failing on its lock.
lock=(-o DPkg::Lock::Timeout=300)
$sudo apt-get "${lock[@]}" update -qq
$sudo apt-get "${lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
