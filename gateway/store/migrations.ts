/**
 * Schema migrations, applied in order and recorded in `schema_migrations`. Never edit a shipped
 * migration: add a new one. Plain SQL kept to what SQLite and PostgreSQL both accept.
 */
export const migrations: { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: "registry, device events, alerts, audit trail, notification attempts",
    sql: `
CREATE TABLE communities (id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE grids (
  id TEXT PRIMARY KEY,
  community_id TEXT NOT NULL REFERENCES communities(id),
  name TEXT NOT NULL
);
CREATE TABLE people (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('resident','doctor','family','grid-worker','staff')),
  community_id TEXT NOT NULL REFERENCES communities(id),
  grid_id TEXT REFERENCES grids(id),
  phone TEXT,
  address TEXT
);
CREATE TABLE contacts (
  person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK (kind IN ('webhook')),
  address TEXT NOT NULL
);
CREATE INDEX contacts_person ON contacts(person_id);
CREATE TABLE devices (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('call-button','locator-tag')),
  owner_id TEXT NOT NULL REFERENCES people(id),
  secret_hash TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE assignments (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  resident_id TEXT NOT NULL REFERENCES people(id),
  person_id TEXT NOT NULL REFERENCES people(id),
  relation TEXT NOT NULL CHECK (relation IN ('doctor','family')),
  UNIQUE (resident_id, person_id, relation)
);
CREATE TABLE device_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  device_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  type TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  handled INTEGER NOT NULL DEFAULT 0,
  UNIQUE (device_id, seq, ts)
);
CREATE INDEX device_events_unhandled ON device_events(handled) WHERE handled = 0;
CREATE TABLE alerts (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  device_id TEXT NOT NULL,
  subject_id TEXT NOT NULL,
  state TEXT NOT NULL,
  level INTEGER NOT NULL,
  presses INTEGER NOT NULL,
  opened_at INTEGER NOT NULL,
  accepted_by TEXT,
  accepted_at INTEGER,
  closed_by TEXT,
  closed_at INTEGER,
  outcome TEXT,
  deadline_at INTEGER
);
CREATE INDEX alerts_active ON alerts(device_id, kind) WHERE state IN ('open','accepted');
CREATE INDEX alerts_state ON alerts(state, opened_at);
CREATE INDEX alerts_deadline ON alerts(deadline_at) WHERE deadline_at IS NOT NULL;
CREATE TABLE alert_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  alert_id TEXT NOT NULL REFERENCES alerts(id),
  at INTEGER NOT NULL,
  type TEXT NOT NULL,
  actor TEXT,
  data TEXT NOT NULL
);
CREATE INDEX alert_events_alert ON alert_events(alert_id, id);
CREATE TRIGGER alert_events_append_only_update BEFORE UPDATE ON alert_events
  BEGIN SELECT RAISE(ABORT, 'alert_events is append-only'); END;
CREATE TRIGGER alert_events_append_only_delete BEFORE DELETE ON alert_events
  BEGIN SELECT RAISE(ABORT, 'alert_events is append-only'); END;
CREATE TABLE notification_attempts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  alert_id TEXT NOT NULL REFERENCES alerts(id),
  level INTEGER NOT NULL,
  person_id TEXT,
  channel TEXT NOT NULL,
  address TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  at INTEGER NOT NULL,
  status TEXT NOT NULL,
  detail TEXT
);
CREATE INDEX notification_attempts_alert ON notification_attempts(alert_id, id);
`,
  },
];

migrations.push({
  version: 2,
  name: "locator tags: device state, zone tracks, geofences, embedded telemetry and its spool",
  sql: `
CREATE TABLE geofences (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  shape TEXT NOT NULL,
  schedule TEXT,
  device_ids TEXT NOT NULL
);
-- The embedded telemetry and its spool, device state and zone tracks were created here too; they
-- now live in telemetry.db (createTelemetrySchema), and a database that had them here has them
-- moved there at start.
`,
});

migrations.push({
  version: 3,
  name: "accounts, sessions, the access audit log, device revocation, alert retention",
  sql: `
CREATE TABLE accounts (
  username TEXT PRIMARY KEY,
  password_hash TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('admin','staff','doctor','family')),
  person_id TEXT REFERENCES people(id),
  created_at INTEGER NOT NULL,
  disabled_at INTEGER
);
CREATE TABLE sessions (
  id_hash TEXT PRIMARY KEY,
  username TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
  csrf_token TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_username ON sessions(username);
CREATE TABLE audit_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT,
  detail TEXT
);
CREATE INDEX audit_log_at ON audit_log(at);
ALTER TABLE devices ADD COLUMN revoked_at INTEGER;
-- Closed alerts past their retention may be deleted; an open or accepted alert's trail never.
DROP TRIGGER alert_events_append_only_delete;
CREATE TRIGGER alert_events_append_only_delete BEFORE DELETE ON alert_events
  WHEN (SELECT state FROM alerts WHERE id = OLD.alert_id) IN ('open','accepted')
  BEGIN SELECT RAISE(ABORT, 'an active alert''s trail cannot be deleted'); END;
`,
});

migrations.push({
  version: 4,
  name: "escalation that never falls through: the policy with the alert, repeats, reminders, reach; device outbox; resident locale",
  sql: `
-- The policy snapshot of alerts opened before this version is filled in at start from the policies then in force.
ALTER TABLE alerts ADD COLUMN policy TEXT;
ALTER TABLE alerts ADD COLUMN repeats INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN reminders INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN notified TEXT NOT NULL DEFAULT '[]';
ALTER TABLE alerts ADD COLUMN unreached INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN exhausted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN last_activity_at INTEGER;
UPDATE alerts SET last_activity_at = COALESCE(accepted_at, opened_at);
-- Accepted alerts now have a deadline too (resolve within); before, accepting cleared it.
UPDATE alerts SET deadline_at = accepted_at WHERE state = 'accepted' AND deadline_at IS NULL;
ALTER TABLE people ADD COLUMN locale TEXT NOT NULL DEFAULT 'zh-CN';
-- What a notification was about (a page, or a follow-up such as 'accepted'); device commands
-- wait here, pending, until the device acknowledges them or they expire.
ALTER TABLE notification_attempts ADD COLUMN event TEXT NOT NULL DEFAULT 'paged';
ALTER TABLE notification_attempts ADD COLUMN payload TEXT;
ALTER TABLE notification_attempts ADD COLUMN expires_at INTEGER;
UPDATE notification_attempts SET status = 'delivered' WHERE channel = 'device' AND status = 'pending';
CREATE INDEX notification_attempts_outbox ON notification_attempts(address, id)
  WHERE channel = 'device' AND status = 'pending';
CREATE INDEX notification_attempts_webhook ON notification_attempts(address, id) WHERE channel = 'webhook';
`,
});

migrations.push({
  version: 5,
  name: "sign-in throttles that survive a restart; sessions that end when idle",
  sql: `
CREATE TABLE signin_throttle (
  key TEXT PRIMARY KEY,
  username TEXT,
  failures INTEGER NOT NULL,
  strikes INTEGER NOT NULL,
  blocked_until INTEGER NOT NULL,
  audited INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX signin_throttle_username ON signin_throttle(username);
ALTER TABLE sessions ADD COLUMN last_seen_at INTEGER;
UPDATE sessions SET last_seen_at = created_at;
`,
});

migrations.push({
  version: 6,
  name: "event ids that count nothing: stream keys from the time of each event",
  sql: `
-- An audit event's public id was the district-wide counter: a family account could read off how
-- busy the district was. Its public id is now a key made of its time (ms x 1024, plus one when
-- several share a millisecond), still strictly increasing in the order events are stored.
ALTER TABLE alert_events ADD COLUMN stream_key INTEGER;
DROP TRIGGER alert_events_append_only_update;
UPDATE alert_events SET stream_key = id;
CREATE TRIGGER alert_events_append_only_update BEFORE UPDATE ON alert_events
  BEGIN SELECT RAISE(ABORT, 'alert_events is append-only'); END;
CREATE UNIQUE INDEX alert_events_stream_key ON alert_events(stream_key);
`,
});

migrations.push({
  version: 7,
  name: "off-the-shelf watches: a device's protocol, and what watches report beyond a heartbeat",
  sql: `
-- 'watch': the 3G / SeTracker protocol over TCP, known by its 10 or 15 digit id and no secret.
ALTER TABLE devices ADD COLUMN protocol TEXT NOT NULL DEFAULT 'mqtt';
-- Buffered positions (UD2, flagged late), cell towers and Wi-Fi access points seen without a fix,
-- alarms with their status word, and health readings (heart rate, blood pressure...), as JSON.
CREATE TABLE watch_readings (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  device_id TEXT NOT NULL,
  ts INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  type TEXT NOT NULL,
  late INTEGER NOT NULL DEFAULT 0,
  data TEXT NOT NULL
);
CREATE INDEX watch_readings_device ON watch_readings(device_id, id);
CREATE INDEX watch_readings_received ON watch_readings(received_at);
`,
});

migrations.push({
  version: 8,
  name: "contacts on every channel, in order of preference, per alert kind and level",
  sql: `
-- The kind check allowed webhooks only: the table is made again with the channels and the
-- choice of alerts each contact is for (alert_kinds: a JSON array, NULL for every kind).
CREATE TABLE person_contacts (
  person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('webhook','wecom','dingtalk','sms','voice')),
  address TEXT NOT NULL,
  alert_kinds TEXT,
  min_level INTEGER NOT NULL DEFAULT 1,
  PRIMARY KEY (person_id, position)
);
INSERT INTO person_contacts (person_id, position, kind, address)
  SELECT person_id, ROW_NUMBER() OVER (PARTITION BY person_id ORDER BY rowid), kind, address FROM contacts;
DROP TABLE contacts;
-- Whether a contact's last message failed, for every channel (phone numbers are shared by sms and voice).
DROP INDEX notification_attempts_webhook;
CREATE INDEX notification_attempts_contact ON notification_attempts(address, channel, id) WHERE channel <> 'device';
`,
});

migrations.push({
  version: 9,
  name: "Web Push subscriptions: the phones and browsers a person turned alerts on in",
  sql: `
-- One row per browser subscription (its endpoint is unique to it); the account that made it,
-- so a disabled account's phones fall silent and only its owner removes it.
CREATE TABLE push_subscriptions (
  endpoint TEXT PRIMARY KEY,
  person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
  username TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
  p256dh TEXT NOT NULL,
  auth TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX push_subscriptions_person ON push_subscriptions(person_id);
CREATE INDEX push_subscriptions_account ON push_subscriptions(username);
`,
});

migrations.push({
  version: 10,
  name: "residents' category (elderly or child) and their care notes",
  sql: `
-- Null for everyone but residents, and for residents registered before a category was recorded.
ALTER TABLE people ADD COLUMN category TEXT CHECK (category IN ('elderly','child'));
-- Apart from people, so that lists of people never carry them.
CREATE TABLE care_notes (
  person_id TEXT PRIMARY KEY REFERENCES people(id) ON DELETE CASCADE,
  conditions TEXT,
  medicines TEXT,
  allergies TEXT,
  door_access TEXT,
  language TEXT,
  updated_at INTEGER NOT NULL,
  updated_by TEXT NOT NULL
);
`,
});

/**
 * Migration 11 on either engine (`json` builds a JSON object: json_object, jsonb_build_object):
 * one active alert per device and kind, the emergencies counting as one.
 */
export const oneActiveAlertPerDevice = (json: string) => `
-- Gateways sharing a database could each open an alert for one device at the same moment. Before
-- the rule is enforced, one twin is kept (one someone accepted, then the most severe, then the
-- newest), counting the others' presses; they are closed as superseded by it (as a new call
-- after a quiet period closes the old one), each with its entry in the trail.
CREATE TEMP TABLE superseded AS
  SELECT id, presses, FIRST_VALUE(id) OVER twins AS kept, MAX(opened_at) OVER whole AS closed_at,
    ROW_NUMBER() OVER twins AS n
  FROM alerts WHERE state IN ('open','accepted')
  WINDOW whole AS (PARTITION BY device_id, CASE WHEN kind IN ('call','fall','sos') THEN 'emergency' ELSE kind END),
    twins AS (whole ORDER BY state = 'accepted' DESC,
      CASE kind WHEN 'sos' THEN 3 WHEN 'fall' THEN 2 WHEN 'call' THEN 1 ELSE 0 END DESC, opened_at DESC, id DESC);
DELETE FROM superseded WHERE n = 1;
UPDATE alerts SET presses = presses + (SELECT SUM(s.presses) FROM superseded s WHERE s.kept = alerts.id)
  WHERE id IN (SELECT kept FROM superseded);
INSERT INTO alert_events (alert_id, at, type, actor, data, stream_key)
  SELECT id, closed_at, 'cancelled', NULL, ${json}('reason', 'superseded', 'by', kept),
    COALESCE((SELECT MAX(stream_key) FROM alert_events), 0) + ROW_NUMBER() OVER (ORDER BY id)
  FROM superseded;
UPDATE alerts SET state = 'cancelled', closed_at = (SELECT closed_at FROM superseded s WHERE s.id = alerts.id),
    outcome = 'superseded by an alert another gateway opened at the same time', deadline_at = NULL
  WHERE id IN (SELECT id FROM superseded);
DROP TABLE superseded;
CREATE UNIQUE INDEX alerts_one_active ON alerts(device_id, (CASE WHEN kind IN ('call','fall','sos') THEN 'emergency' ELSE kind END)) WHERE state IN ('open','accepted');
`;

migrations.push({
  version: 11,
  name: "one active alert per device and kind (emergencies counting as one), whichever gateway opens it",
  sql: oneActiveAlertPerDevice("json_object"),
});
