#!/bin/sh
# Write sentinel.conf (Sentinel rewrites it at run time, so it lives in a writable volume) and start.
set -eu
SVC="kekbroker-redis-headless.${POD_NAMESPACE}.svc.cluster.local"
MASTER=$(redis-cli -h kekbroker-redis-sentinel -p 26379 --no-auth-warning sentinel get-master-addr-by-name kekbroker 2>/dev/null | head -1 || true)
[ -n "$MASTER" ] || MASTER="kekbroker-redis-0.${SVC}"
cat > /conf/sentinel.conf <<CONF
port 26379
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip ${HOSTNAME}.${SVC}
sentinel monitor kekbroker ${MASTER} 6379 2
sentinel auth-pass kekbroker ${REDIS_PASSWORD}
sentinel down-after-milliseconds kekbroker 5000
sentinel failover-timeout kekbroker 30000
sentinel parallel-syncs kekbroker 1
CONF
exec redis-sentinel /conf/sentinel.conf
