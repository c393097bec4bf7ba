#!/usr/bin/env bash
# Starts and stops a local OCI registry: Debian's docker-registry (the reference distribution server),
# plain HTTP, no auth, storage in a directory, for tests and the VM test (push with ci/real/images.sh push).
#
# Usage: ci/real/registry.sh start ADDR:PORT DIR   writes DIR/config.yml, stores blobs under DIR/data, logs
#                                                  to DIR/registry.log, and returns once /v2/ answers
#                                                  (already running from DIR on ADDR:PORT: nothing to do)
#        ci/real/registry.sh stop DIR              stops the registry started from DIR (its pid file)
set -euo pipefail
BIN=${DOCKER_REGISTRY:-/usr/bin/docker-registry}

log() { echo "real/registry: $*" >&2; }
die() { echo "real/registry: $*" >&2; exit 1; }

running() { [ -f "$1/registry.pid" ] && kill -0 "$(cat "$1/registry.pid")" 2>/dev/null; }

case ${1:-} in
  start)
    addr=${2:?usage: registry.sh start ADDR:PORT DIR}
    dir=$(realpath -m "${3:?usage: registry.sh start ADDR:PORT DIR}")
    [ -x "$BIN" ] || die "$BIN is missing (Debian package docker-registry; ci/deps.sh installs it)"
    mkdir -p "$dir/data"
    if running "$dir"; then
      grep -qx "  addr: $addr" "$dir/config.yml" || die "a registry from $dir already runs on another address"
      log "already running on $addr (pid $(cat "$dir/registry.pid"))"
      exit 0
    fi
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: info
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: $addr
EOF
    setsid "$BIN" serve "$dir/config.yml" >>"$dir/registry.log" 2>&1 </dev/null &
    echo $! >"$dir/registry.pid"
    for _ in $(seq 1 100); do
      if curl -fsS -o /dev/null "http://$addr/v2/" 2>/dev/null; then
        log "listening on $addr (pid $(cat "$dir/registry.pid"), storage $dir/data)"
        exit 0
      fi
      running "$dir" || { tail -n 20 "$dir/registry.log" >&2; die "docker-registry exited (log: $dir/registry.log)"; }
      sleep 0.1
    done
    die "docker-registry does not answer on http://$addr/v2/ after 10s (log: $dir/registry.log)"
    ;;
  stop)
    dir=$(realpath -m "${2:?usage: registry.sh stop DIR}")
    if running "$dir"; then
      pid=$(cat "$dir/registry.pid")
      kill "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
      log "stopped (pid $pid)"
    fi
    rm -f "$dir/registry.pid"
    ;;
  *) die "usage: registry.sh start ADDR:PORT DIR | stop DIR" ;;
esac
