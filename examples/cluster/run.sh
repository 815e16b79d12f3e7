#!/usr/bin/env bash
# A tier of three farmgate instances on loopback, coordinated through Redis:
# starts redis-server (127.0.0.1:6390, nothing persisted), the demo's three
# backends (inside `farmgate demo`, whose own proxy listens on 8090), and the
# instances of examples/cluster/fg{1,2,3}.yaml, then prints what to try.
# With pebble installed (Debian package pebble: Let's Encrypt's test CA), it
# also starts pebble and gives every instance an ACME listener for one
# domain: the tier orders one certificate and all three serve it.
# Ctrl-C stops everything. Needs redis-server (Debian package redis-server)
# and curl; run from anywhere:  examples/cluster/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

FARMGATE=${FARMGATE:-target/debug/farmgate}
if ! command -v redis-server >/dev/null; then
  echo "run.sh: redis-server is missing: apt-get install redis-server" >&2
  exit 1
fi
[ -x "$FARMGATE" ] || cargo build --quiet

work=$(mktemp -d)
pids=()
stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap stop EXIT INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 100); do
    port_open "$1" && return 0
    sleep 0.1
  done
  echo "run.sh: nothing listens on port $1; logs in $work" >&2
  exit 1
}

redis-server --port 6390 --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
  >"$work/redis.log" 2>&1 &
pids+=($!)
wait_port 6390
if port_open 9101; then
  echo "run.sh: the demo's backends are already up (a running farmgate demo): using them"
else
  "$FARMGATE" demo --listen 127.0.0.1:8090 --admin 127.0.0.1:9089 --tls-listen 127.0.0.1:8490 \
    >"$work/demo.log" 2>&1 &
  pids+=($!)
  wait_port 9101
fi
acme=""
if [ -x /usr/bin/pebble ] && [ -x /usr/bin/pebble-challtestsrv ]; then
  # Pebble's DNS answers 127.0.0.1 for every name; it validates HTTP-01 at
  # fg3's plain listener, whichever instance ordered.
  root=$(pwd)
  pebble-challtestsrv -dns01 127.0.0.1:8053 -http01 "" -https01 "" -tlsalpn01 "" \
    -management 127.0.0.1:8055 -defaultIPv4 127.0.0.1 -defaultIPv6 "" >"$work/challtestsrv.log" 2>&1 &
  pids+=($!)
  cat >"$work/pebble.json" <<JSON
{"pebble": {"listenAddress": "127.0.0.1:14000", "managementListenAddress": "127.0.0.1:15000",
  "certificate": "$root/certs-dev/localhost.crt", "privateKey": "$root/certs-dev/localhost.key",
  "httpPort": 8083, "tlsPort": 5001, "ocspResponderURL": "", "externalAccountBindingRequired": false}}
JSON
  PEBBLE_VA_NOSLEEP=1 pebble -config "$work/pebble.json" -dnsserver 127.0.0.1:8053 >"$work/pebble.log" 2>&1 &
  pids+=($!)
  wait_port 14000
  for i in 1 2 3; do
    cat >"$work/fg$i-acme.yaml" <<YAML
listeners:
  - name: acme-tls
    bind: "127.0.0.1:846$i"
    tls:
      acme:
        directory: "https://localhost:14000/dir"
        contact: ["mailto:ops@example.com"]
        domains: [acme.example]
        storage: "$work/acme-fg$i"
        ca: "$root/certs-dev/ca.crt"
YAML
  done
  export FG_ACME=$work
  acme=yes
else
  echo "run.sh: pebble is not installed (apt-get install pebble): no ACME listeners"
fi
for i in 1 2 3; do
  "$FARMGATE" run --config "examples/cluster/fg$i.yaml" >"$work/fg$i.log" 2>&1 &
  pids+=($!)
done
for i in 1 2 3; do wait_port "808$i"; wait_port "909$i"; done

cat <<TRY
A tier of three farmgate instances is up (logs in $work):
  fg1: http://127.0.0.1:8081  https://localhost:8441  admin http://127.0.0.1:9091/
  fg2: http://127.0.0.1:8082  https://localhost:8442  admin http://127.0.0.1:9092/
  fg3: http://127.0.0.1:8083  https://localhost:8443  admin http://127.0.0.1:9093/

The tier, as fg2 sees it (every instance, its config hash, when last seen):
  curl -s http://127.0.0.1:9092/api/cluster | python3 -m json.tool

Drain on one, watch the others (within a second; the status pages say "set for the tier"):
  curl -s -X POST http://127.0.0.1:9091/api/farms/web/servers/demo-1/drain
  for p in 8081 8082 8083; do for n in 1 2 3; do curl -s http://127.0.0.1:\$p/; done; done   # no demo-1
  curl -s -X POST http://127.0.0.1:9093/api/farms/web/servers/demo-1/enable

Resume a TLS session on another instance (the tier shares its ticket keys):
  get() { printf 'GET / HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' | openssl s_client -connect "127.0.0.1:\$1" \\
    -servername localhost -CAfile certs-dev/ca.crt "\${@:2}" 2>/dev/null | grep -E '^(New|Reused)'; }
  get 8441 -sess_out $work/session    # New
  get 8442 -sess_in $work/session     # Reused: fg1's ticket opened on fg2

A cold URL across the tier (stored by one instance, a hit on the others):
  curl -si -H 'Host: shop.example' http://127.0.0.1:8081/static/logo | grep -i x-cache   # MISS
  curl -si -H 'Host: shop.example' http://127.0.0.1:8082/static/logo | grep -i x-cache   # HIT
  curl -s -X POST http://127.0.0.1:9093/api/cache/purge      # purges all three and Redis

One rate limit for the tier (5/s per client on /api/, counted across all three):
  for i in \$(seq 10); do for p in 8081 8082 8083; do curl -s -o /dev/null -w '%{http_code} ' http://127.0.0.1:\$p/api/x; done; done; echo
  curl -s http://127.0.0.1:9091/metrics | grep farmgate_limit_cluster   # kill Redis: degraded 1, each allows 5/3 a second

Redis trouble never fails a request:
  kill -STOP \$(pgrep -f 'redis-server.*6390'); curl -s http://127.0.0.1:8081/; kill -CONT \$(pgrep -f 'redis-server.*6390')

TRY
if [ -n "$acme" ]; then
  cat <<TRY
ACME for the tier (pebble at https://localhost:14000/dir, validating at fg3's port 8083):
one instance ordered acme.example under the tier's lock, fg3 answered the challenge
whichever did, and all three serve the certificate (orders_total: one 1, two 0s):
  curl -sk https://localhost:15000/roots/0 > $work/pebble-root.pem
  for p in 8461 8462 8463; do curl -s --cacert $work/pebble-root.pem \\
    --resolve acme.example:\$p:127.0.0.1 https://acme.example:\$p/ -o /dev/null -w "\$p %{http_code}\\n"; done
  for p in 9091 9092 9093; do curl -s http://127.0.0.1:\$p/api/status | python3 -c \\
    'import json,sys; [print(l["tls"]["acme"]) for l in json.load(sys.stdin)["listeners"] if l["name"]=="acme-tls"]'; done

TRY
fi
echo "Ctrl-C stops everything."
wait
