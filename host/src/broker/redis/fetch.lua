-- Atomically move up to ARGV[1] messages from the queue lists into kombu's
-- `unacked` bookkeeping, so a crash at any point loses nothing: a message is
-- either still in its list or recorded in `unacked` with its lease time.
--
-- KEYS[1] = unacked (hash), KEYS[2] = unacked_index (zset),
-- KEYS[3..] = queue lists in pop order (priority steps, then queues).
-- ARGV[1] = max messages, ARGV[2] = now (Unix seconds, float),
-- ARGV[3] = delivery-tag prefix unique to this worker and call,
-- ARGV[4..] = the queue (routing key) of each list in KEYS[3..].
-- Returns a flat list: tag1, message1, tag2, message2, ...
--
-- The script does not parse messages: Lua string work on a 1 KiB envelope
-- costs more than everything else here together. Tags are ours (kombu's
-- restore only needs them unique), the routing key is the list's queue, and
-- the exchange is "" as for every Celery 5 task message. Short tags also keep
-- the `unacked_index` zset cheap to update.
local max = tonumber(ARGV[1])
local now = ARGV[2]
local prefix = ARGV[3]
local out = {}
local count = 0
for i = 3, #KEYS do
    local suffix = ',"","' .. ARGV[i + 1] .. '"]'
    while count < max do
        local message = redis.call('RPOP', KEYS[i])
        if not message then break end
        count = count + 1
        local tag = prefix .. count
        redis.call('HSET', KEYS[1], tag, '[' .. message .. suffix)
        redis.call('ZADD', KEYS[2], now, tag)
        out[#out + 1] = tag
        out[#out + 1] = message
    end
    if count >= max then break end
end
return out
