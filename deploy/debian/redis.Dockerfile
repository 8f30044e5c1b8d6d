# Redis from Debian's packages, for machines that cannot pull redis:7.4.2-bookworm.
# Bookworm ships Redis 7.0 (not 7.4.2); the compose file's command, volume and health check
# work unchanged. Built by scripts/stack on a Debian base image.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && mkdir -p /data && chown redis:redis /data
COPY deploy/debian/redis-entrypoint.sh /usr/local/bin/redis-entrypoint
WORKDIR /data
VOLUME ["/data"]
EXPOSE 6379
ENTRYPOINT ["sh", "/usr/local/bin/redis-entrypoint"]
CMD ["redis-server"]
