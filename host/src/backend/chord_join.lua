-- Record one finished chord header task and report whether the chord is
-- complete, exactly as Celery 5.7's Redis backend does, so Python workers
-- can finish members of the same chord (shared/celery-protocol.md §6).
--
-- KEYS[1] = G.j (zset of results by group_index), KEYS[2] = G.d (set of
-- recorded members, makes redeliveries idempotent), KEYS[3] = G.s (header
-- size, set by the client), KEYS[4] = G.t (extra members), KEYS[5] = G.c
-- (claim / "done" marker), KEYS[6] = G (the taskset key: the header's
-- GroupResult, saved by whoever applied the chord when a member's result
-- is a group).
-- ARGV[1] = "<task_id>:<group_index>", ARGV[2] = group_index,
-- ARGV[3] = entry JSON, ARGV[4] = TTL seconds, ARGV[5] = claim token.
-- Returns {status, ...}:
--   {'done'}  the chord fired already (a redelivery: nothing to do);
--   {'wait'}  no size recorded yet: Celery's group sets it just before it
--             sends the header's last member, so members sent before it can
--             finish first; the caller checks again later;
--   {'open'}  recorded, the chord is not complete (or another caller
--             claimed it);
--   {'fire', saved GroupResult or '', entries in group_index order...}
--             to the one caller that claimed the chord.
if redis.call('GET', KEYS[5]) == 'done' then return {'done'} end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then
    redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
    redis.call('SADD', KEYS[2], ARGV[1])
end
local count = redis.call('ZCOUNT', KEYS[1], '-inf', '+inf')
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
redis.call('EXPIRE', KEYS[6], ARGV[4])
local size = redis.call('GET', KEYS[3])
if not size then return {'wait'} end
local extra = tonumber(redis.call('GET', KEYS[4]) or '0') or 0
if count ~= (tonumber(size) or -1) + extra then return {'open'} end
if not redis.call('SET', KEYS[5], ARGV[5], 'NX', 'EX', 6) then return {'open'} end
local reply = {'fire', redis.call('GET', KEYS[6]) or ''}
for _, entry in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do reply[#reply + 1] = entry end
return reply
