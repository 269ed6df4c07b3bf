# recsysd image: built and run on Debian bookworm, whose packages are the
# project's fixed dependencies.
#
#   docker build -t recsysd .
#   docker run -p 50051:50051 -p 9464:9464 -v /srv/models:/models recsysd --model /models/model.lmdb
#
# Without --model the image serves its built-in demo model.

FROM debian:bookworm AS build
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        make ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make deps && make build BUILD=/build BUILD_TYPE=Release \
    && /build/recsys-model demo -o /build/demo.lmdb

# The runtime: bookworm-slim has the same libraries as the build stage, so
# nothing but the shared libraries the three programs link is added.
FROM debian:bookworm-slim
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        libgrpc29 libprotobuf-c1 liblmdb0 libopenblas0-pthread libjemalloc2 liburcu8 zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home recsys
COPY --from=build /build/recsysd /build/recsys-model /build/recsys-cli /usr/local/bin/
# Owned by the daemon's user: it takes a read lease on the file it serves
# (engine/reload.h), which the kernel grants only to the file's owner.
COPY --from=build --chown=recsys:recsys /build/demo.lmdb /models/model.lmdb
USER recsys
EXPOSE 50051 9464
ENV RECSYS_LISTEN=0.0.0.0:50051 RECSYS_METRICS_LISTEN=0.0.0.0:9464 RECSYS_MODEL=/models/model.lmdb
# The standard gRPC health check, SERVING only once a model is loaded.
# Behind TLS, add --tls-ca (and a client certificate under mutual TLS),
# or leave health to the orchestrator's own gRPC probe.
# The port is RECSYS_LISTEN's, whatever it is set to; "|| exit 1" because
# Docker reserves exit status 2, which recsys-cli uses for usage errors.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD recsys-cli --addr "127.0.0.1:${RECSYS_LISTEN##*:}" --timeout 2 health || exit 1
ENTRYPOINT ["/usr/local/bin/recsysd"]
