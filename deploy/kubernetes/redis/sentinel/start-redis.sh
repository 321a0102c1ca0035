#!/bin/sh
# Write redis.conf into the config volume and start Redis. A pod that is not the current master (asked
# from the Sentinels; pod 0 when none answers yet) starts as its replica.
set -eu
SVC="kekbroker-redis-headless.${POD_NAMESPACE}.svc.cluster.local"
ME="${HOSTNAME}.${SVC}"
MASTER=$(env -u REDISCLI_AUTH redis-cli -h kekbroker-redis-sentinel -p 26379 --no-auth-warning sentinel get-master-addr-by-name kekbroker 2>/dev/null | head -1 || true)
[ -n "$MASTER" ] || MASTER="kekbroker-redis-0.${SVC}"
cat > /conf/redis.conf <<CONF
port 6379
dir /data
appendonly yes
requirepass "${REDIS_PASSWORD}"
masterauth "${REDIS_PASSWORD}"
replica-announce-ip ${ME}
protected-mode no
CONF
if [ "$MASTER" != "$ME" ]; then echo "replicaof ${MASTER} 6379" >> /conf/redis.conf; fi
exec redis-server /conf/redis.conf
