#!/usr/bin/env bash
# One real Apache Kafka broker for the stream tests and bench: the release jars from Maven
# Central (tests/kafka/pom.xml, copied by `mvn dependency:copy-dependencies` into a cache
# outside the clone), KRaft mode with broker and controller in one process, on 127.0.0.1 with
# free ports, single-broker settings for the internal topics (replication factor 1, min ISR 1,
# so transactions work), and a watchdog that stops it after a deadline even if its test dies.
#
#   tests/kafka/broker.sh fetch                 the jars into the cache; prints their folder
#   tests/kafka/broker.sh start DIR [SECONDS]   a broker in DIR (default deadline 1800 s);
#                                               prints host:port once it serves, also in
#                                               DIR/bootstrap; DIR/server.log is its log
#
# Besides PLAINTEXT the broker has two secured listeners, with certificates made here by
# openssl for this broker alone (DIR/tls: ca.crt, the broker's, a client's tls.crt/tls.key):
#   SSL       TLS with client certificates required (mTLS); host:port in DIR/bootstrap.ssl
#   SASL_SSL  TLS, then SASL with SCRAM-SHA-512 or PLAIN; host:port in DIR/bootstrap.sasl_ssl
# The SASL users (DIR/users: one `mechanism name password` a line): SCRAM-SHA-512 user
# `scram-user` (stored by the storage format, as KRaft bootstraps SCRAM credentials) and PLAIN
# user `plain-user` (in the listener's JAAS configuration).
#   tests/kafka/broker.sh stop DIR              stops it (TERM, then KILL after 20 s)
#
# MM_KAFKA_HOST (default 127.0.0.1): the address the client listeners bind and advertise, e.g.
# a cluster bridge's gateway so that pods reach a broker outside the cluster (e2e/suite/stream.sh).
#
# Kafka 4.1.1: the 4.x line is KRaft-only (no ZooKeeper code path left to configure around),
# runs on the Java 17 installed here, and still speaks the protocol versions librdkafka 2.0.2
# (Debian bookworm) negotiates: KIP-896 removed only versions older than Kafka 2.1's.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")"
host="${MM_KAFKA_HOST:-127.0.0.1}"
cache="${MM_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/maskmesh/kafka/$version}"

die() { echo "broker.sh: $*" >&2; exit 1; }

fetch() {
    [ -f "$cache/libs/.complete" ] && { echo "$cache/libs"; return; }
    command -v mvn >/dev/null || die "mvn not found (hack/install-deps.sh kafka installs it)"
    mkdir -p "$cache"
    # one fetch at a time: parallel test runs share the cache
    exec 9>"$cache/.lock"
    flock 9
    if [ ! -f "$cache/libs/.complete" ]; then
        rm -rf "$cache/libs.tmp"
        echo "broker.sh: fetching Kafka $version from Maven Central into $cache" >&2
        nice -n 10 mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$cache/libs.tmp" >&2 ||
            die "mvn dependency:copy-dependencies failed"
        [ -f "$cache/libs.tmp/kafka_2.13-$version.jar" ] || die "kafka_2.13-$version.jar missing"
        touch "$cache/libs.tmp/.complete"
        rm -rf "$cache/libs"
        mv "$cache/libs.tmp" "$cache/libs"
    fi
    flock -u 9
    echo "$cache/libs"
}

free_ports() { # four ports free now on $host
    python3 - "$host" <<'EOF'
import socket, sys
ss = [socket.socket() for _ in range(4)]
for s in ss:
    s.bind((sys.argv[1], 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))
EOF
}

# A CA, the broker's certificate for $host and a client certificate, in DIR/tls. Keys are
# PKCS#8 PEM (what Kafka's PEM key store reads); nothing leaves DIR.
make_certs() {
    local t="$1/tls"
    mkdir -p "$t"
    (
        cd "$t"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 \
            -subj "/CN=maskmesh test CA" 2>/dev/null
        for who in broker client; do
            openssl req -newkey rsa:2048 -nodes -keyout "$who.key" -out "$who.csr" \
                -subj "/CN=maskmesh test $who" 2>/dev/null
            printf 'subjectAltName=IP:%s,IP:127.0.0.1,DNS:localhost\n' "$host" >"$who.ext"
            openssl x509 -req -in "$who.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
                -out "$who.crt" -days 2 -extfile "$who.ext" 2>/dev/null
        done
        cat broker.key broker.crt >broker.pem
        cp client.crt tls.crt
        cp client.key tls.key
    ) || die "making the test certificates failed"
}

# The ports are free when picked, but another process of this shared machine may bind one
# before the broker does: then the broker exits on "Address already in use" and start tries
# again with new ports (start_once sets bind_lost).
start() {
    local attempt
    for attempt in 1 2 3; do
        bind_lost=0
        start_once "$@"
        [ "$bind_lost" = 1 ] || return 0
        echo "broker.sh: a port was taken before the broker bound it; trying again ($attempt)" >&2
    done
    die "the broker could not bind its ports in 3 attempts"
}

start_once() {
    local dir="$1" deadline="${2:-1800}" libs port cport sport saport id pid
    [ -n "$dir" ] || die "start needs a directory"
    libs="$(fetch)"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null && die "a broker already runs in $dir"
    rm -rf "$dir/data" "$dir/server.log" "$dir/bootstrap"
    read -r port cport sport saport < <(free_ports)
    rm -rf "$dir/tls"
    make_certs "$dir"
    local scram_pass plain_pass
    scram_pass="scram-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
    plain_pass="plain-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
    printf 'SCRAM-SHA-512 scram-user %s\nPLAIN plain-user %s\n' "$scram_pass" "$plain_pass" >"$dir/users"
    cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://$host:$port,CONTROLLER://127.0.0.1:$cport,SSL://$host:$sport,SASL_SSL://$host:$saport
advertised.listeners=PLAINTEXT://$host:$port,SSL://$host:$sport,SASL_SSL://$host:$saport
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL
# TLS on both secured listeners from PEM files (KIP-651); mTLS on SSL only
ssl.keystore.type=PEM
ssl.keystore.location=$dir/tls/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$dir/tls/ca.crt
listener.name.ssl.ssl.client.auth=required
listener.name.sasl_ssl.ssl.client.auth=none
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_plain-user="$plain_pass";
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=false
# one broker: every internal topic has one replica, and a transaction needs only it
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
min.insync.replicas=1
# a group's first member starts at once instead of waiting 3 s for others
group.initial.rebalance.delay.ms=0
# aborted transactions of a killed producer are cleaned up within the test's time
transaction.abort.timed.out.transaction.cleanup.interval.ms=2000
transaction.remove.expired.transaction.cleanup.interval.ms=5000
EOF
    cat >"$dir/log4j2.properties" <<EOF
rootLogger.level=INFO
rootLogger.appenderRef.f.ref=F
appender.f.type=File
appender.f.name=F
appender.f.fileName=$dir/server.log
appender.f.layout.type=PatternLayout
appender.f.layout.pattern=[%d] %p %m (%c)%n
logger.kafka.name=kafka
logger.kafka.level=INFO
logger.apache.name=org.apache.kafka
logger.apache.level=WARN
EOF
    # the heap a single test broker needs, and the JVM's other defaults kept small: the
    # machine is shared
    local jvm=(java -Xms256m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20
               -Djava.awt.headless=true "-Dlog4j2.configurationFile=$dir/log4j2.properties"
               -cp "$libs/*")
    # a cluster id as Kafka's Uuid.randomUuid makes one: never starting with '-', which the
    # storage tool's argument parser would take for an option (1 id in 64 did, CI stop 26)
    id="$(python3 -c '
import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"):
        print(s)
        break
')"
    nice -n 10 "${jvm[@]}" kafka.tools.StorageTool format "--cluster-id=$id" -c "$dir/server.properties" \
        --add-scram "SCRAM-SHA-512=[name=scram-user,password=$scram_pass]" \
        >"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; die "storage format failed"; }
    nice -n 10 "${jvm[@]}" kafka.Kafka "$dir/server.properties" >"$dir/stdout.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/pid"
    # the watchdog: outlives this script, ends when the broker does or at the deadline
    (
        end=$((SECONDS + deadline))
        while kill -0 "$pid" 2>/dev/null; do
            if [ $SECONDS -ge $end ]; then
                echo "broker.sh: deadline of ${deadline}s passed, stopping the broker" >>"$dir/server.log"
                kill "$pid" 2>/dev/null; sleep 20; kill -9 "$pid" 2>/dev/null
                break
            fi
            sleep 1
        done
    ) </dev/null >/dev/null 2>&1 &
    echo $! >"$dir/watchdog.pid"
    for _ in $(seq 1 240); do
        if ! kill -0 "$pid" 2>/dev/null; then
            if grep -q "Address already in use" "$dir/stdout.log" "$dir/server.log" 2>/dev/null; then
                stop "$dir"
                bind_lost=1
                return
            fi
            tail -n 30 "$dir/stdout.log" "$dir/server.log" >&2 || true
            die "the broker exited"
        fi
        if grep -q "Kafka Server started" "$dir/server.log" 2>/dev/null; then
            echo "$host:$sport" >"$dir/bootstrap.ssl"
            echo "$host:$saport" >"$dir/bootstrap.sasl_ssl"
            echo "$host:$port" >"$dir/bootstrap"
            echo "$host:$port"
            return
        fi
        sleep 0.5
    done
    stop "$dir"
    die "the broker did not start within 120 s"
}

stop() {
    local dir="$1" pid
    [ -f "$dir/pid" ] || return 0
    pid="$(cat "$dir/pid")"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    [ -f "$dir/watchdog.pid" ] && kill "$(cat "$dir/watchdog.pid")" 2>/dev/null || true
    rm -f "$dir/pid" "$dir/watchdog.pid"
}

case "${1:-}" in
    fetch) fetch ;;
    start) start "${2:-}" "${3:-1800}" ;;
    stop)  stop "${2:?stop needs a directory}" ;;
    version) echo "$version" ;;
    *) echo "usage: $0 fetch | start DIR [SECONDS] | stop DIR | version" >&2; exit 2 ;;
esac
