# syntax=docker/dockerfile:1
#
# Sitrep's container image: `sitrep serve` on port 8080, as a non-root user.
#
#   docker build -t sitrep .
#   docker run --rm -p 8080:8080 --env-file sitrep.env sitrep            # serve (the default)
#   docker run --rm --env-file migrate.env sitrep migrate                 # apply migrations
#
# Configuration is environment variables only (README, "Configuration"); see
# docs/deploy-azure.md and docs/sovereign.md. The image sets SITREP_ENV=production: set
# SITREP_ENV=development or test to try it with the local development issuer.

# Debian 12, like the development machines: same hiredis (0.14.1), Pango and Cairo.
ARG SWIFT_IMAGE=swift:6.3.1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------------------------
FROM ${SWIFT_IMAGE} AS build

# The C libraries of the system-library targets (Package.swift: CHiredis → hiredis,
# CPangoCairo → pangocairo; CMalloc is glibc's malloc.h, already there) and pkg-config.
# Unpinned on purpose: Debian 12's stable versions, with their security updates.
# hadolint ignore=DL3008
RUN export DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true \
    && apt-get -q update \
    && apt-get -q install -y --no-install-recommends \
        libhiredis-dev \
        libpango1.0-dev \
        libcairo2-dev \
        pkg-config \
        zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /build

# Dependencies first, so that a source change does not fetch them again. Package.resolved is
# not committed (.gitignore), so this resolves the newest versions Package.swift allows.
COPY Package.swift ./
RUN swift package resolve

COPY . .

# The build-tool plugin generates Sources/Generated from api/openapi.yaml during this build.
# Swift's runtime and Foundation are linked statically; the C libraries above stay shared. Every
# function gets a section of its own, so the linker can pack the ones the server runs together
# (Tools/layout/sitrep.order; `codeLayout` in Package.swift). Tools/lib/bench.sh spells the same.
RUN swift build -c release --static-swift-stdlib -Xswiftc -Xfrontend -Xswiftc -function-sections --product sitrep \
    && mkdir -p /staging/bin \
    && cp "$(swift build -c release --show-bin-path)/sitrep" /staging/bin/sitrep \
    && strip /staging/bin/sitrep \
    && cp /usr/libexec/swift/linux/swift-backtrace-static /staging/bin/swift-backtrace-static \
    && cp -R migrations /staging/migrations

# ---------------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}

# Run-time libraries only: hiredis (Redis client), Pango + Cairo and the fonts the briefing PDF
# names (DejaVu Sans / Sans Mono, Noto Naskh Arabic; fontconfig finds them), CA certificates
# (JWKS, Twilio, SendGrid, PostgreSQL sslmode=verify-full, Redis rediss://), tzdata.
# hadolint ignore=DL3008
RUN export DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true \
    && apt-get -q update \
    && apt-get -q install -y --no-install-recommends \
        ca-certificates \
        tzdata \
        libhiredis0.14 \
        libpango-1.0-0 \
        libpangocairo-1.0-0 \
        libcairo2 \
        fontconfig \
        fonts-dejavu-core \
        fonts-noto-core \
        libstdc++6 \
        zlib1g \
    && rm -rf /var/lib/apt/lists/*

# A system user with no login shell; its home is the (development-only) data directory.
RUN groupadd --system --gid 10001 sitrep \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/sitrep --create-home \
        --shell /usr/sbin/nologin sitrep

WORKDIR /app
COPY --from=build /staging/bin/sitrep /usr/local/bin/sitrep
COPY --from=build /staging/bin/swift-backtrace-static /usr/local/libexec/swift-backtrace-static
# Read at run time: `sitrep serve` loads them at start (for /readyz) and `sitrep migrate` applies them.
COPY --from=build /staging/migrations /app/migrations

# The spec, /docs and everything generated are compiled into the binary; the migrations are
# the only files it reads. SITREP_DATA_DIR is used only outside production (dev issuer key).
ENV SITREP_ENV=production \
    SITREP_HOST=0.0.0.0 \
    SITREP_PORT=8080 \
    SITREP_MIGRATIONS_DIR=/app/migrations \
    SITREP_DATA_DIR=/var/lib/sitrep \
    SWIFT_BACKTRACE=enable=yes,sanitize=yes,threads=all,images=all,interactive=no,swift-backtrace=/usr/local/libexec/swift-backtrace-static

# Numeric, so that orchestrators can check runAsNonRoot.
USER 10001:10001
EXPOSE 8080

# Liveness with what the slim image has (bash, no curl): GET /healthz on the configured port.
# Azure App Service ignores HEALTHCHECK; configure its health check path (/healthz) instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${SITREP_PORT:-8080} && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

# SIGTERM stops `serve` gracefully (open streams end, in-flight deliveries finish).
ENTRYPOINT ["sitrep"]
CMD ["serve"]
