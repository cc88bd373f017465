/**
 * The schema, as ordered migrations. A migration, once released, is never edited: a change
 * is a new entry with the next version. They live in a module rather than .sql files so the
 * compiled package carries them with no copy step.
 *
 * Keys and paths are `text COLLATE "C"` in a UTF-8 database: "C" compares the encoded bytes,
 * which is the order LevelDB keeps, so listings and cursors behave the same on both engines.
 */
export interface Migration {
  version: number
  name: string
  sql: string
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
-- the commit lock is the 'head' row: every commit group takes it FOR UPDATE first. The floor
-- is a row of its own so that raising it never waits for a commit.
CREATE TABLE log_bounds (
  name text PRIMARY KEY,
  value bigint NOT NULL
);
INSERT INTO log_bounds (name, value) VALUES ('head', 0), ('floor', 1);

CREATE TABLE events (
  seq bigint PRIMARY KEY,
  user_id text NOT NULL,
  event json NOT NULL
);
CREATE INDEX events_user_seq ON events (user_id, seq);

CREATE TABLE users (
  id text PRIMARY KEY,
  created_at bigint NOT NULL,
  usage bigint NOT NULL DEFAULT 0
);

-- key is <z32><path>; content is set for inline files, blob for the others
CREATE TABLE files (
  key text COLLATE "C" PRIMARY KEY,
  user_id text NOT NULL,
  size bigint NOT NULL,
  hash text NOT NULL,
  type text NOT NULL,
  mtime bigint NOT NULL,
  blob text,
  content bytea
);

-- times are the database's clock, one for every instance
CREATE TABLE blobs (
  id text PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now(),
  touched_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  size bigint,
  chunks integer,
  referenced boolean NOT NULL DEFAULT false,
  dead_at timestamptz,
  read_at timestamptz
);
CREATE INDEX blobs_dead ON blobs (dead_at) WHERE dead_at IS NOT NULL;
CREATE INDEX blobs_orphan ON blobs (touched_at) WHERE NOT referenced AND dead_at IS NULL;

CREATE TABLE blob_chunks (
  blob_id text NOT NULL REFERENCES blobs (id) ON DELETE CASCADE,
  n integer NOT NULL,
  data bytea NOT NULL,
  PRIMARY KEY (blob_id, n)
);
-- file bodies are mostly compressed already: store them as they come, without trying
ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE sessions (
  secret text PRIMARY KEY,
  user_id text NOT NULL,
  capabilities text NOT NULL,
  created_at bigint NOT NULL
);

CREATE TABLE signup_tokens (
  token text PRIMARY KEY,
  created_at bigint NOT NULL,
  used_by text,
  used_at bigint
);

-- keys are whatever string the caller gives, kept as their UTF-8 bytes (text cannot hold NUL)
CREATE TABLE replay (
  key bytea PRIMARY KEY,
  expires_at bigint NOT NULL
);
CREATE INDEX replay_expires ON replay (expires_at);

CREATE TABLE meta (
  key text PRIMARY KEY,
  value bytea NOT NULL
);
`,
  },
  {
    version: 2,
    name: 'relay upstream cursors',
    sql: `
-- a relay's position on each homeserver it follows, written in the commit of the events it covers
CREATE TABLE upstreams (
  upstream text PRIMARY KEY,
  homeserver text NOT NULL,
  cursor bigint NOT NULL
);
`,
  },
  {
    version: 3,
    name: 'file keys of any allowed length',
    sql: `
-- A btree entry holds at most 2,704 bytes, and a file key (<z32><path>) may have 52 + 4,096:
-- the key cannot be an index entry whole once its bytes do not compress. So its UTF-8 bytes
-- are stored in two parts, key_start (the first 2,048) and key_rest (the others: empty for
-- all but the longest keys), and key order is the order of (key_start, key_rest) compared as
-- bytes: keys that differ within their first 2,048 bytes compare as their starts do (a start
-- shorter than 2,048 bytes is the whole key, and sorts before the longer keys it begins),
-- and keys with the same start compare as their rests do. Two indexes serve that order:
--
--   files_pkey (key_start, key_rest_hash): a file's identity, and listings in key order
--     between different starts. The rest is hashed (sha256, empty when there is no rest),
--     so for a key of 2,048 bytes or less the entry is the key, as before.
--   files_rest (sha256(key_start), key_rest), for keys with a full start only: the keys that
--     share one start (the files of a folder more than 2 KB deep), in key order, however
--     many there are.
--
-- Neither entry passes 2,048 + 33 or 33 + 2,100 bytes, whatever the key holds. A listing
-- reads files_pkey in pages and goes into files_rest only for a start it finds shared
-- (src/kv/postgres/file-keys.ts); keys are split the same way there (key-parts.ts).

-- a text's UTF-8 bytes: convert_to is STABLE because it looks conversions up, but from a
-- UTF8 database (Hearth refuses any other) to UTF8 it is the text's own bytes, always
CREATE FUNCTION utf8_bytes(t text) RETURNS bytea LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT convert_to(t, 'UTF8') $$;

ALTER TABLE files DROP CONSTRAINT files_pkey;
ALTER TABLE files
  ADD COLUMN key_start bytea NOT NULL GENERATED ALWAYS AS (substring(utf8_bytes(key) FROM 1 FOR 2048)) STORED,
  ADD COLUMN key_rest bytea NOT NULL GENERATED ALWAYS AS (substring(utf8_bytes(key) FROM 2049)) STORED,
  ADD COLUMN key_rest_hash bytea NOT NULL GENERATED ALWAYS AS (
    CASE WHEN octet_length(key) > 2048 THEN sha256(substring(utf8_bytes(key) FROM 2049)) ELSE '' END
  ) STORED,
  ADD CONSTRAINT files_pkey PRIMARY KEY (key_start, key_rest_hash);
CREATE INDEX files_rest ON files (sha256(key_start), key_rest) WHERE octet_length(key_start) = 2048;
`,
  },
  {
    version: 4,
    name: 'events stored as the feed sends them',
    sql: `
-- an event is stored as src/events/stored.ts lays it out: a header, then its /subscribe data,
-- which replays send as they are; path is kept apart for the path filter of one user's index.
-- Rows of before keep their JSON in event until the store rewrites them (stored.ts reads both).
ALTER TABLE events ADD COLUMN stored text, ADD COLUMN path text;
ALTER TABLE events ALTER COLUMN event DROP NOT NULL;
ALTER TABLE events ADD CONSTRAINT events_stored_or_json CHECK (stored IS NOT NULL OR event IS NOT NULL);
`,
  },
  {
    version: 5,
    name: 'the seq of each file\'s write',
    sql: `
-- the seq of the write that made each file what it is, for snapshots; rows of before get it
-- from the log when the store opens (store.ts, giveFilesTheirSeq)
ALTER TABLE files ADD COLUMN seq bigint;
`,
  },
  {
    version: 6,
    name: 'durable consumers',
    sql: `
-- one row per consumer (SPEC §12): its definition, position, outstanding deliveries with their
-- holder and deadline (the leases), and dead letters, as src/kv/consumer-record.ts lays them
-- out. Every change reads the row FOR UPDATE and writes it back in one transaction, so a lease
-- is claimed by one instance at a time; the row's size is bounded by maxPending and the
-- dead letters kept, not by the log.
CREATE TABLE consumers (
  owner text NOT NULL,
  id text NOT NULL,
  created_at bigint NOT NULL,
  record text NOT NULL,
  PRIMARY KEY (owner, id)
);
`,
  },
  {
    version: 7,
    name: 'relay cursor names in byte order',
    sql: `
-- a relay reads the cursors of one user's followed filters on one homeserver, named
-- <homeserver>|<user><path>, as one range of names inside its commit: in byte order, as on LevelDB
ALTER TABLE upstreams ALTER COLUMN upstream TYPE text COLLATE "C";
`,
  },
  {
    version: 8,
    name: 'consumer events in rows of their own',
    sql: `
-- a consumer's outstanding events leave its row for rows of their own (src/kv/consumer-parts.ts),
-- so a claim or an ack writes the events it touched and not the whole record; the row keeps the
-- rest (definition, position, dead letters) and a version that every change raises, by which an
-- instance knows whether the record it decoded last is still the stored one
ALTER TABLE consumers ADD COLUMN version bigint NOT NULL DEFAULT 0;
CREATE TABLE consumer_events (
  owner text NOT NULL,
  id text NOT NULL,
  seq bigint NOT NULL,
  user_id text NOT NULL,
  deliveries integer NOT NULL,
  holder text,
  deadline bigint,
  PRIMARY KEY (owner, id, seq),
  FOREIGN KEY (owner, id) REFERENCES consumers (owner, id) ON DELETE CASCADE
);
INSERT INTO consumer_events (owner, id, seq, user_id, deliveries, holder, deadline)
  SELECT c.owner, c.id, (e->>'seq')::bigint, e->>'user', (e->>'deliveries')::integer, e->>'holder', (e->>'deadline')::bigint
  FROM consumers c, jsonb_array_elements(c.record::jsonb->'outstanding') e;
UPDATE consumers SET record = (record::jsonb - 'outstanding')::text;
`,
  },
  {
    version: 9,
    name: 'consumer changes in a journal',
    sql: `
-- a consumer's outstanding events as a snapshot (one text, src/kv/consumer-parts.ts changeText)
-- written at the version 'folded', and a row per change since, in place of a row per event: a
-- change inserts one row however many events it touched, and an instance that decoded the
-- record at a version since 'folded' catches up by reading the changes after it; 'incarnation'
-- tells a consumer from one deleted before it under the same id, whose versions it repeats
CREATE SEQUENCE consumer_incarnations;
ALTER TABLE consumers ADD COLUMN snapshot text NOT NULL DEFAULT '',
  ADD COLUMN folded bigint NOT NULL DEFAULT 0,
  ADD COLUMN journal_bytes bigint NOT NULL DEFAULT 0,
  ADD COLUMN incarnation bigint NOT NULL DEFAULT nextval('consumer_incarnations');
CREATE TABLE consumer_journal (
  owner text NOT NULL,
  id text NOT NULL,
  version bigint NOT NULL,
  changes text NOT NULL,
  PRIMARY KEY (owner, id, version),
  FOREIGN KEY (owner, id) REFERENCES consumers (owner, id) ON DELETE CASCADE
);
UPDATE consumers c SET folded = c.version, snapshot = 'c' || (c.record::jsonb->>'cursor') || E'\\n' || coalesce((
  SELECT string_agg('+' || to_hex(e.seq) || ' ' || e.deliveries || ' ' || coalesce(e.deadline::text, '') || ' ' || coalesce(e.holder, '') || ' ' || e.user_id || E'\\n', '' ORDER BY e.seq)
  FROM consumer_events e WHERE e.owner = c.owner AND e.id = c.id), '');
DROP TABLE consumer_events;
`,
  },
]
