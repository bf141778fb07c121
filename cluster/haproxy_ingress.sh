#!/bin/sh
# Serve's HAProxy on KubeRay pods (RAY_SERVE_HAPROXY_BINARY_PATH in cluster/kuberay/
# rayservice.yaml): cluster/haproxy_loopback.py's launcher, which makes a new HAProxy answer
# 503 with Retry-After, not 404, until it knows the routes (that file says why), then runs
# Ray's bundled HAProxy. --keep-side-ports: the stats and metrics listeners stay on the pod
# network, where Prometheus scrapes them.
exec python3 "$(dirname "$0")/haproxy_loopback.py" --keep-side-ports "$@"
