#!/usr/bin/env bash
# Installs the Debian packages the tests drive, when they are missing:
#   mosquitto-clients  mosquitto_pub / mosquitto_sub / mosquitto_rr, a device client that is not MQTT.js
#   mosquitto          the broker `npm run bench` measures the gateway against
#   influxdb           influxd 1.6, the telemetry store the InfluxDB tests start on a free port
#   openssl            makes the self-signed certificate the MQTT-over-TLS test connects with
set -euo pipefail
need=()
command -v mosquitto_rr >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v mosquitto >/dev/null 2>&1 || need+=(mosquitto)
command -v influxd >/dev/null 2>&1 || need+=(influxdb)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "Installing Debian packages for the tests: ${need[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
