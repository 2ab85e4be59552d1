-- Record one finished chord header task and report whether the chord is
-- complete, exactly as Celery 5.7's Redis backend does, so Python workers
-- can finish members of the same chord (shared/celery-protocol.md §6).
--
-- KEYS[1] = G.j (zset of results by group_index), KEYS[2] = G.d (set of
-- recorded members, makes redeliveries idempotent), KEYS[3] = G.s (header
-- size, set by the client), KEYS[4] = G.t (extra members), KEYS[5] = G.c
-- (claim / "done" marker), KEYS[6] = G (the taskset key).
-- ARGV[1] = "<task_id>:<group_index>", ARGV[2] = group_index,
-- ARGV[3] = entry JSON, ARGV[4] = TTL seconds, ARGV[5] = claim token.
-- Returns the entries (in group_index order) to the one caller that
-- claimed the chord, else an empty list.
if redis.call('GET', KEYS[5]) == 'done' then return {} end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then
    redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
    redis.call('SADD', KEYS[2], ARGV[1])
end
local count = redis.call('ZCOUNT', KEYS[1], '-inf', '+inf')
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
redis.call('EXPIRE', KEYS[6], ARGV[4])
local size = redis.call('GET', KEYS[3])
if not size then return {} end
local extra = tonumber(redis.call('GET', KEYS[4]) or '0') or 0
if count ~= (tonumber(size) or -1) + extra then return {} end
if not redis.call('SET', KEYS[5], ARGV[5], 'NX', 'EX', 6) then return {} end
return redis.call('ZRANGE', KEYS[1], 0, -1)
