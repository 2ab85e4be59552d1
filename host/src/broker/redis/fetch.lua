-- Atomically move up to ARGV[1] messages from the queue lists into kombu's
-- `unacked` bookkeeping, so a crash at any point loses nothing: a message is
-- either still in its list or recorded in `unacked` with its lease time.
--
-- KEYS[1] = unacked (hash), KEYS[2] = unacked_index (zset),
-- KEYS[3..] = queue lists in pop order (priority steps, then queues).
-- ARGV[1] = max messages, ARGV[2] = now (Unix seconds; a whole number, see
--           below), ARGV[3] = delivery-tag prefix unique to this worker and
--           call: the tag of the n-th message taken is prefix .. n,
-- ARGV[4] = largest message the worker accepts, in bytes,
-- ARGV[5] = byte budget: stop once the messages taken reach it (the one
--           that crosses it is still taken, so a call always makes progress),
-- ARGV[6..] = the queue (routing key) of each list in KEYS[3..].
-- Returns the messages in the order taken (the n-th has tag prefix .. n).
-- A message over the cap is returned as two items instead: its size (an
-- integer), then only its first and last EXCERPT bytes (where a kombu
-- envelope keeps its headers), so the oversized body never leaves Redis
-- before it is acked.
--
-- Cost, measured with callgrind on redis-server (bench/README.md): each
-- redis.call costs more than the command it runs, so a batch is one RPOP
-- with a count per list, one HSET and one ZADD, not three calls per message.
-- The score is a whole number of seconds because ZADD parses every score
-- with strtod, which takes a slow multi-precision path for a 17-digit
-- fraction (a quarter of the script's cost). The `unacked` value stays
-- kombu's `[envelope, exchange, routing_key]`, so a Celery worker sharing
-- the queues can restore it; that concatenation is the only per-message
-- string work left. Tags are ours (kombu's restore only needs them unique),
-- the routing key is the list's queue, and the exchange is "" as for every
-- Celery 5 task message.
local EXCERPT = 8192
local max = tonumber(ARGV[1])
local now = ARGV[2]
local prefix = ARGV[3]
local max_bytes = tonumber(ARGV[4])
local budget = tonumber(ARGV[5])
local out, entries, leases = {}, {}, {}
local count, taken = 0, 0

-- unpack() of a long table overflows Lua's C stack: at most 1000 at a time.
local function call_chunked(command, key, args)
    for first = 1, #args, 1000 do
        redis.call(command, key, unpack(args, first, math.min(first + 999, #args)))
    end
end

for i = 3, #KEYS do
    if count >= max or taken >= budget then break end
    local popped = redis.call('RPOP', KEYS[i], max - count)
    if popped then
        local suffix = ',"","' .. ARGV[i + 3] .. '"]'
        for j = 1, #popped do
            if taken >= budget then
                -- Over the byte budget: the rest goes back as it was (the
                -- last one pushed is the next one popped).
                local back = {}
                for k = #popped, j, -1 do back[#back + 1] = popped[k] end
                call_chunked('RPUSH', KEYS[i], back)
                break
            end
            local message = popped[j]
            count = count + 1
            local tag = prefix .. count
            entries[#entries + 1] = tag
            entries[#entries + 1] = '[' .. message .. suffix
            leases[#leases + 1] = now
            leases[#leases + 1] = tag
            if #message > max_bytes then
                out[#out + 1] = #message
                out[#out + 1] = string.sub(message, 1, EXCERPT) .. string.sub(message, -EXCERPT)
                taken = taken + 2 * EXCERPT
            else
                out[#out + 1] = message
                taken = taken + #message
            end
        end
    end
end
if count > 0 then
    call_chunked('HSET', KEYS[1], entries)
    call_chunked('ZADD', KEYS[2], leases)
end
return out
