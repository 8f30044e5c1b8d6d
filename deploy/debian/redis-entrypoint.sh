#!/bin/sh
# As the official redis image does: protected mode off (the container's network is the
# boundary; Redis is never published), the server as the redis user, files in /data.
set -eu
if [ "${1:-}" = "redis-server" ]; then
  shift
  chown -R redis:redis /data
  exec setpriv --reuid=redis --regid=redis --init-groups redis-server "$@" --protected-mode no
fi
exec "$@"
