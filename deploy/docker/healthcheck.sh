#!/usr/bin/env bash
# The image's HEALTHCHECK: GET /health on the local `tars serve` and succeed on HTTP 200 only
# (503 means the database is unreachable). It uses bash's /dev/tcp, so the runtime image needs
# no HTTP client. The port is TARS_PORT's (8099 by default); `tars worker` serves no HTTP, so
# a worker container turns the check off (deploy/compose.yaml does).
set -euo pipefail

port=${TARS_PORT:-8099}
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET /health HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$port" >&3
IFS=' ' read -r -t 5 _ status _ <&3
[ "$status" = 200 ]
