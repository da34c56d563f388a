/**
 * PostgreSQL schema migrations, applied in order, each in a transaction, and recorded in
 * `schema_migrations` (see migratePostgres). Never edit a shipped migration: add a new one.
 *
 * Version numbers follow SQLite's (migrations.ts): a PostgreSQL database starts empty, so version
 * 9 is the schema SQLite reaches through its versions 1 to 9, in one step, and every later SQLite
 * version gets its PostgreSQL entry under the same number.
 *
 * Differences from SQLite, on purpose: times in ms are BIGINT; JSON is JSONB; flags are BOOLEAN;
 * ids that lists are ordered by compare byte-wise (COLLATE "C"), as SQLite's do; the embedded
 * telemetry and its spool live in this database too (SQLite keeps them in telemetry.db).
 */
import { oneActiveAlertPerDevice } from "./migrations.ts";

export const postgresMigrations: { version: number; name: string; sql: string }[] = [
  {
    version: 9,
    name: "the schema of SQLite versions 1 to 9: registry, alerts and their trail, outbox, locator tags, accounts, watches, contacts, Web Push; embedded telemetry; deadline claims",
    sql: `
CREATE TABLE communities (id TEXT COLLATE "C" PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE grids (
  id TEXT COLLATE "C" PRIMARY KEY,
  community_id TEXT NOT NULL REFERENCES communities(id),
  name TEXT NOT NULL
);
CREATE TABLE people (
  id TEXT COLLATE "C" PRIMARY KEY,
  name TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('resident','doctor','family','grid-worker','staff')),
  community_id TEXT NOT NULL REFERENCES communities(id),
  grid_id TEXT REFERENCES grids(id),
  phone TEXT,
  address TEXT,
  locale TEXT NOT NULL DEFAULT 'zh-CN'
);
CREATE TABLE person_contacts (
  person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('webhook','wecom','dingtalk','sms','voice')),
  address TEXT NOT NULL,
  alert_kinds JSONB,
  min_level INTEGER NOT NULL DEFAULT 1,
  PRIMARY KEY (person_id, position)
);
CREATE TABLE devices (
  id TEXT COLLATE "C" PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('call-button','locator-tag')),
  owner_id TEXT NOT NULL REFERENCES people(id),
  protocol TEXT NOT NULL DEFAULT 'mqtt',
  secret_hash TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  revoked_at BIGINT
);
CREATE TABLE assignments (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  resident_id TEXT NOT NULL REFERENCES people(id),
  person_id TEXT NOT NULL REFERENCES people(id),
  relation TEXT NOT NULL CHECK (relation IN ('doctor','family')),
  UNIQUE (resident_id, person_id, relation)
);
CREATE TABLE device_events (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  device_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  ts BIGINT NOT NULL,
  type TEXT NOT NULL,
  received_at BIGINT NOT NULL,
  handled BOOLEAN NOT NULL DEFAULT false,
  UNIQUE (device_id, seq, ts)
);
CREATE INDEX device_events_unhandled ON device_events(id) WHERE NOT handled;
CREATE TABLE alerts (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  device_id TEXT NOT NULL,
  subject_id TEXT NOT NULL,
  state TEXT NOT NULL,
  level INTEGER NOT NULL,
  presses INTEGER NOT NULL,
  opened_at BIGINT NOT NULL,
  accepted_by TEXT,
  accepted_at BIGINT,
  closed_by TEXT,
  closed_at BIGINT,
  outcome TEXT,
  deadline_at BIGINT,
  policy JSONB,
  repeats INTEGER NOT NULL DEFAULT 0,
  reminders INTEGER NOT NULL DEFAULT 0,
  notified JSONB NOT NULL DEFAULT '[]',
  unreached BOOLEAN NOT NULL DEFAULT false,
  exhausted BOOLEAN NOT NULL DEFAULT false,
  last_activity_at BIGINT,
  -- Several gateways share the deadlines: one that claims a due deadline holds it until then.
  claimed_until BIGINT
);
CREATE INDEX alerts_active ON alerts(device_id, kind) WHERE state IN ('open','accepted');
CREATE INDEX alerts_state ON alerts(state, opened_at);
CREATE INDEX alerts_deadline ON alerts(deadline_at) WHERE deadline_at IS NOT NULL;
-- An event's public id is its stream key: its time in ms x 1024, plus one per event sharing the ms.
CREATE TABLE alert_events (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  alert_id TEXT NOT NULL REFERENCES alerts(id),
  at BIGINT NOT NULL,
  type TEXT NOT NULL,
  actor TEXT,
  data JSONB NOT NULL,
  stream_key BIGINT NOT NULL UNIQUE
);
CREATE INDEX alert_events_alert ON alert_events(alert_id, id);
-- The trail is append-only; a closed alert's trail may be deleted once past its retention.
CREATE FUNCTION alert_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    RAISE EXCEPTION 'alert_events is append-only';
  END IF;
  IF (SELECT state FROM alerts WHERE id = OLD.alert_id) IN ('open','accepted') THEN
    RAISE EXCEPTION 'an active alert''s trail cannot be deleted';
  END IF;
  RETURN OLD;
END $$;
CREATE TRIGGER alert_events_append_only BEFORE UPDATE OR DELETE ON alert_events
  FOR EACH ROW EXECUTE FUNCTION alert_events_append_only();
CREATE TABLE notification_attempts (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  alert_id TEXT NOT NULL REFERENCES alerts(id),
  level INTEGER NOT NULL,
  person_id TEXT,
  channel TEXT NOT NULL,
  event TEXT NOT NULL DEFAULT 'paged',
  address TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  at BIGINT NOT NULL,
  status TEXT NOT NULL,
  detail TEXT,
  payload TEXT,
  expires_at BIGINT
);
CREATE INDEX notification_attempts_alert ON notification_attempts(alert_id, id);
CREATE INDEX notification_attempts_outbox ON notification_attempts(address, id)
  WHERE channel = 'device' AND status = 'pending';
CREATE INDEX notification_attempts_contact ON notification_attempts(address, channel, id) WHERE channel <> 'device';
CREATE TABLE device_state (
  device_id TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
  state JSONB NOT NULL
);
CREATE TABLE zone_tracks (
  device_id TEXT NOT NULL,
  geofence_id TEXT NOT NULL,
  status TEXT NOT NULL,
  streak INTEGER NOT NULL,
  last_ts BIGINT NOT NULL,
  PRIMARY KEY (device_id, geofence_id)
);
CREATE TABLE geofences (
  id TEXT COLLATE "C" PRIMARY KEY,
  name TEXT NOT NULL,
  shape JSONB NOT NULL,
  schedule JSONB,
  device_ids JSONB NOT NULL
);
CREATE TABLE accounts (
  username TEXT COLLATE "C" PRIMARY KEY,
  password_hash TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('admin','staff','doctor','family')),
  person_id TEXT REFERENCES people(id),
  created_at BIGINT NOT NULL,
  disabled_at BIGINT
);
CREATE TABLE sessions (
  id_hash TEXT PRIMARY KEY,
  username TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
  csrf_token TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  last_seen_at BIGINT NOT NULL
);
CREATE INDEX sessions_username ON sessions(username);
CREATE TABLE signin_throttle (
  key TEXT PRIMARY KEY,
  username TEXT,
  failures INTEGER NOT NULL,
  strikes INTEGER NOT NULL,
  blocked_until BIGINT NOT NULL,
  audited BOOLEAN NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX signin_throttle_username ON signin_throttle(username);
CREATE TABLE audit_log (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at BIGINT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT,
  detail JSONB
);
CREATE INDEX audit_log_at ON audit_log(at);
CREATE TABLE watch_readings (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  device_id TEXT NOT NULL,
  ts BIGINT NOT NULL,
  received_at BIGINT NOT NULL,
  type TEXT NOT NULL,
  late BOOLEAN NOT NULL DEFAULT false,
  data JSONB NOT NULL
);
CREATE INDEX watch_readings_device ON watch_readings(device_id, id);
CREATE INDEX watch_readings_received ON watch_readings(received_at);
CREATE TABLE push_subscriptions (
  endpoint TEXT PRIMARY KEY,
  person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
  username TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
  p256dh TEXT NOT NULL,
  auth TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX push_subscriptions_person ON push_subscriptions(person_id);
CREATE INDEX push_subscriptions_account ON push_subscriptions(username);
CREATE TABLE telemetry (
  device_id TEXT NOT NULL,
  ts BIGINT NOT NULL,
  received_at BIGINT NOT NULL,
  battery DOUBLE PRECISION NOT NULL,
  lat DOUBLE PRECISION,
  lon DOUBLE PRECISION,
  accuracy DOUBLE PRECISION,
  source TEXT,
  fix TEXT NOT NULL
);
CREATE INDEX telemetry_device_ts ON telemetry(device_id, ts);
CREATE INDEX telemetry_received ON telemetry(received_at);
CREATE TABLE telemetry_spool (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, point JSONB NOT NULL);
`,
  },
  {
    version: 10,
    name: "residents' category (elderly or child) and their care notes",
    sql: `
ALTER TABLE people ADD COLUMN category TEXT CHECK (category IN ('elderly','child'));
CREATE TABLE care_notes (
  person_id TEXT COLLATE "C" PRIMARY KEY REFERENCES people(id) ON DELETE CASCADE,
  conditions TEXT,
  medicines TEXT,
  allergies TEXT,
  door_access TEXT,
  language TEXT,
  updated_at BIGINT NOT NULL,
  updated_by TEXT NOT NULL
);
`,
  },
  {
    version: 11,
    name: "one active alert per device and kind (emergencies counting as one), whichever gateway opens it",
    sql: oneActiveAlertPerDevice("jsonb_build_object"),
  },
  {
    version: 12,
    name: "which gateway sends each page and received each device event, and which are alive: a dead one's are taken over",
    sql: `
CREATE TABLE gateways (id TEXT PRIMARY KEY, alive_until BIGINT NOT NULL);
CREATE TABLE page_senders (
  event_id BIGINT PRIMARY KEY,
  alert_id TEXT NOT NULL,
  gateway_id TEXT NOT NULL
);
CREATE INDEX page_senders_alert ON page_senders(alert_id);
-- The gateway that stored a device event: one that dies before deciding it leaves it to the living.
-- Null for those from before: undecided ones are taken by the first to look.
ALTER TABLE device_events ADD COLUMN gateway_id TEXT;
-- The pages of open alerts from before: their gateway is unknown, the first to look takes them.
INSERT INTO page_senders (event_id, alert_id, gateway_id)
  SELECT e.stream_key, e.alert_id, 'before-version-12' FROM alert_events e JOIN alerts a ON a.id = e.alert_id
  WHERE e.type = 'notified' AND a.state = 'open';
`,
  },
  {
    version: 13,
    name: "an alert's events appended in one call that takes the stream-key lock last, so that it is held for one round trip, not one per event",
    sql: `
-- Takes the lock, then reads the last key in a statement of its own: a plpgsql statement sees
-- what committed while this one waited for the lock. Keys: one past the last, or the event's time
-- in ms times keys_per_ms when that is later. Each page's sender is recorded with its key.
CREATE FUNCTION append_alert_events(
  lock_key BIGINT, keys_per_ms BIGINT, alert TEXT, sender TEXT,
  ats BIGINT[], types TEXT[], actors TEXT[], payloads JSONB[]
) RETURNS SETOF BIGINT LANGUAGE plpgsql AS $$
DECLARE
  key BIGINT;
BEGIN
  PERFORM pg_advisory_xact_lock(lock_key);
  SELECT COALESCE(MAX(stream_key), 0) INTO key FROM alert_events;
  FOR i IN 1 .. COALESCE(array_length(ats, 1), 0) LOOP
    key := GREATEST(key + 1, ats[i] * keys_per_ms);
    INSERT INTO alert_events (alert_id, at, type, actor, data, stream_key)
      VALUES (alert, ats[i], types[i], actors[i], payloads[i], key);
    IF types[i] = 'notified' THEN
      INSERT INTO page_senders (event_id, alert_id, gateway_id) VALUES (key, alert, sender);
    END IF;
    RETURN NEXT key;
  END LOOP;
END $$;
`,
  },
];
