-- Rows as a golive with chat store schema version 1 wrote them (MIGRATIONS[0] makes the
-- tables): tests/test_chat_store.py loads them into a version-1 file and checks that the
-- current golive upgrades it and reads every row back. Append rows, never change these.
INSERT INTO messages (id, stream, user_id, user_name, user_role, text, at, pdt, deleted_by)
VALUES ('m-v1a', 'main', 'u-ada', 'Ada', 'viewer', 'first <b>', 1000, 1700000000.5, NULL),
       ('m-v1b', 'main', 'u-bob', 'Bob', 'viewer', 'gone', 2000, NULL, 'Grace'),
       ('m-v1c', 'main', 'u-ada', 'Ada', 'viewer', '''); DROP TABLE messages;--', 3000,
        1700000002.5, NULL);
INSERT INTO bans (stream, kind, value, until, banned_by, at, user_id)
VALUES ('main', 'user', 'u-bob', NULL, 'Grace', 2100, 'u-bob'),
       ('main', 'address', '192.0.2.7', 99000, 'Grace', 2100, 'u-bob');
INSERT INTO audit (stream, at, actor_id, actor_name, actor_role, action, target, detail)
VALUES ('main', 2100, 'u-grace', 'Grace', 'moderator', 'ban', 'u-bob', '{"address":true}');
INSERT INTO gifts (id, stream, user_id, user_name, user_role, gift, count, coins, at, pdt,
                   reference)
VALUES ('g-v1a', 'main', 'u-ada', 'Ada', 'viewer', 'rose', 3, 30, 2500, 1700000001.0,
        'ch_1');
INSERT INTO questions (id, stream, user_id, user_name, user_role, text, at, pdt, state)
VALUES ('q-v1a', 'main', 'u-ada', 'Ada', 'viewer', 'Which lens?', 2600, NULL, 'queued'),
       ('q-v1b', 'main', 'u-ada', 'Ada', 'viewer', 'And the light?', 2700, NULL, 'done');
INSERT INTO room_settings (stream, slow_mode, chat_enabled, words, patterns)
VALUES ('main', 10, 0, '["spam"]', '["fr[e3]{2}"]');
INSERT INTO timeline (id, stream, kind, at, pdt, duration, label, attributes)
VALUES ('g-v1a', 'main', 'gift', 2500, 1700000001.0, 5.0, 'Ada sent 3 roses',
        '{"X-GOLIVE-COINS":30}');
