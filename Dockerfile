# syntax=docker/dockerfile:1
# maskmesh's images: one build, then one slim runtime image per binary.
#   hack/build-images.sh          builds every target with the names in hack/images.env
#   docker build --target maskmesh-webhook -t <ref> .
# Targets: maskmesh-controller, maskmesh-webhook, maskmesh-proxy, maskmesh-stream, maskctl. Each runs its
# binary as the non-root user 65532 (exec-form ENTRYPOINT: no shell is involved at run time).

ARG DEBIAN_IMAGE=debian:bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---- build: the project's own dependency script and make, as on a developer's machine ----
FROM ${DEBIAN_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
# the dependency layer only changes when the script does
COPY hack/install-deps.sh hack/install-deps.sh
RUN hack/install-deps.sh build && rm -rf /var/lib/apt/lists/*
COPY . .
RUN make BUILD_STATIC=0 -j"$(nproc)" && \
    for b in maskmesh-controller maskmesh-webhook maskmesh-proxy maskmesh-stream maskctl; do \
        test -x "bin/$b" || { echo "bin/$b was not built" >&2; exit 1; }; \
    done

# ---- runtime base: the shared libraries the binaries link, nothing else ----
FROM ${RUNTIME_IMAGE} AS runtime
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && \
    apt-get install -y --no-install-recommends \
        libmicrohttpd12 libgnutls30 libcurl4 libssl3 libjson-c5 libyaml-0-2 \
        libpcre2-8-0 zlib1g ca-certificates && \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/* /var/log/apt /var/log/dpkg.log
# an image's binary must find every library it links: here every binary but maskmesh-stream,
# whose librdkafka only its own stage installs (checked there)
COPY --from=build /src/bin/ /tmp/bin/
RUN rm /tmp/bin/maskmesh-stream && \
    missing="$(ldd /tmp/bin/* | grep 'not found' || true)"; \
    rm -rf /tmp/bin; \
    if [ -n "$missing" ]; then echo "missing shared libraries:"; echo "$missing"; exit 1; fi
USER 65532:65532
WORKDIR /

FROM runtime AS maskmesh-controller
COPY --from=build --chmod=0755 /src/bin/maskmesh-controller /usr/local/bin/maskmesh-controller
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/maskmesh-controller"]

FROM runtime AS maskmesh-webhook
COPY --from=build --chmod=0755 /src/bin/maskmesh-webhook /usr/local/bin/maskmesh-webhook
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/maskmesh-webhook"]

# The sidecar. iptables is here for the iptables mode's init container, which runs this
# image as root with NET_ADMIN to redirect the app port; the proxy itself runs as 65532.
FROM runtime AS maskmesh-proxy
USER root
RUN apt-get update && \
    apt-get install -y --no-install-recommends iptables && \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/* /var/log/apt /var/log/dpkg.log
COPY --from=build --chmod=0755 /src/bin/maskmesh-proxy /usr/local/bin/maskmesh-proxy
USER 65532:65532
EXPOSE 15480 15481
ENTRYPOINT ["/usr/local/bin/maskmesh-proxy"]

# Kafka topics masked topic to topic (spec.streams); the controller renders its Deployment.
# librdkafka (Debian's) is in this image alone: no other binary links it.
FROM runtime AS maskmesh-stream
USER root
RUN apt-get update && \
    apt-get install -y --no-install-recommends librdkafka1 && \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/* /var/log/apt /var/log/dpkg.log
COPY --from=build --chmod=0755 /src/bin/maskmesh-stream /usr/local/bin/maskmesh-stream
RUN missing="$(ldd /usr/local/bin/maskmesh-stream | grep 'not found' || true)"; \
    if [ -n "$missing" ]; then echo "missing shared libraries:"; echo "$missing"; exit 1; fi
USER 65532:65532
EXPOSE 15481
ENTRYPOINT ["/usr/local/bin/maskmesh-stream"]

FROM runtime AS maskctl
COPY --from=build --chmod=0755 /src/bin/maskctl /usr/local/bin/maskctl
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/maskctl"]
