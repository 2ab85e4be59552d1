-- Move leased messages whose ETA is far off out of `unacked` (and out of
-- the worker's memory) into the delayed set, atomically: each message is
-- in exactly one of the two at any instant, so a worker dying at any point
-- loses nothing (still leased: the sweep restores it and it is delayed
-- again; moved: it waits in Redis for any worker).
--
-- KEYS[1] = unacked (hash), KEYS[2] = unacked_index (zset),
-- KEYS[3] = chard:delayed (zset: tag -> due time, Unix ms),
-- KEYS[4] = chard:delayed:messages (hash: tag -> envelope, tag..':q' -> list)
-- ARGV = triples: tag, due time (Unix ms), the list to push it to when due.
-- Returns how many were moved (a tag no longer leased was restored or
-- taken by someone else meanwhile: left alone).
local moved = 0
for i = 1, #ARGV, 3 do
    local tag, due, list = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local entry = redis.call('HGET', KEYS[1], tag)
    -- The entry is `[envelope,"",queue]` as fetch.lua wrote it.
    local cut = entry and string.find(entry, ',"","[^"]*"%]$')
    if cut then
        redis.call('HDEL', KEYS[1], tag)
        redis.call('ZREM', KEYS[2], tag)
        redis.call('HSET', KEYS[4], tag, string.sub(entry, 2, cut - 1), tag .. ':q', list)
        redis.call('ZADD', KEYS[3], due, tag)
        moved = moved + 1
    end
end
return moved
