-- Atomically move up to ARGV[1] messages from the queue lists into kombu's
-- `unacked` bookkeeping, so a crash at any point loses nothing: a message is
-- either still in its list or recorded in `unacked` with its lease time.
--
-- KEYS[1] = unacked (hash), KEYS[2] = unacked_index (zset),
-- KEYS[3..] = queue lists in pop order (priority steps, then queues).
-- ARGV[1] = max messages, ARGV[2] = now (Unix seconds, float),
-- ARGV[3] = delivery-tag prefix unique to this worker and call,
-- ARGV[4] = largest message the worker accepts, in bytes,
-- ARGV[5] = byte budget: stop once the messages taken reach it (the one
--           that crosses it is still taken, so a call always makes progress),
-- ARGV[6..] = the queue (routing key) of each list in KEYS[3..].
-- Returns a flat list of triples: tag, size, message. `size` is 0 for a
-- message within the cap; for a larger one it is the message's size and
-- `message` is only its first and last EXCERPT bytes (where a kombu
-- envelope keeps its headers), so the oversized body never leaves Redis
-- before it is acked.
--
-- The script does not parse messages: Lua string work on a 1 KiB envelope
-- costs more than everything else here together. Tags are ours (kombu's
-- restore only needs them unique), the routing key is the list's queue, and
-- the exchange is "" as for every Celery 5 task message. Short tags also keep
-- the `unacked_index` zset cheap to update.
local EXCERPT = 8192
local max = tonumber(ARGV[1])
local now = ARGV[2]
local prefix = ARGV[3]
local max_bytes = tonumber(ARGV[4])
local budget = tonumber(ARGV[5])
local out = {}
local count = 0
local taken = 0
for i = 3, #KEYS do
    local suffix = ',"","' .. ARGV[i + 3] .. '"]'
    while count < max and taken < budget do
        local message = redis.call('RPOP', KEYS[i])
        if not message then break end
        count = count + 1
        local tag = prefix .. count
        redis.call('HSET', KEYS[1], tag, '[' .. message .. suffix)
        redis.call('ZADD', KEYS[2], now, tag)
        out[#out + 1] = tag
        if #message > max_bytes then
            out[#out + 1] = #message
            out[#out + 1] = string.sub(message, 1, EXCERPT) .. string.sub(message, -EXCERPT)
            taken = taken + 2 * EXCERPT
        else
            out[#out + 1] = 0
            out[#out + 1] = message
            taken = taken + #message
        end
    end
    if count >= max or taken >= budget then break end
end
return out
