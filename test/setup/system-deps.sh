#!/usr/bin/env bash
# Installs every Debian package the tests and `npm run bench` drive, when it is missing.
# The table below is the one list: test/unit/system-deps.test.ts fails when a test starts a
# program that is not in it, or when a row names the wrong package.
set -euo pipefail
need=()
while read -r program package; do
  [ -z "$program" ] && continue
  if [[ $program == /* ]]; then [ -e "$program" ] && continue; else command -v "$program" >/dev/null 2>&1 && continue; fi
  need+=("$package")
done <<'TABLE'
mosquitto_rr                                   mosquitto-clients
mosquitto_pub                                  mosquitto-clients
mosquitto_sub                                  mosquitto-clients
mosquitto                                      mosquitto
influxd                                        influxdb
openssl                                        openssl
/usr/bin/chromium                              chromium
/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc   fonts-wqy-zenhei
/usr/lib/postgresql/15/bin/initdb              postgresql-15
/usr/lib/postgresql/15/bin/postgres            postgresql-15
redis-server                                   redis-server
haproxy                                        haproxy
docker-compose                                 docker-compose
TABLE
# What each is for: the mosquitto clients are device clients that are not MQTT.js; mosquitto is
# the broker the benchmark measures the gateway against; influxd (1.x) is the telemetry store the
# InfluxDB tests start on a free port; openssl makes the MQTT-over-TLS test's certificate;
# Chromium runs the dashboard tests, and the CJK font lets it draw the Chinese page; PostgreSQL
# (Debian 12's 15) and redis-server are the scale-out store and broker bus the cluster tests start
# in temporary directories; haproxy checks and runs the front door's configuration; docker-compose
# validates docker-compose.yml without a Docker engine.
[ ${#need[@]} -eq 0 ] && exit 0
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "Installing Debian packages for the tests: ${need[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
