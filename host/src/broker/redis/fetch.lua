-- Atomically move up to ARGV[1] messages from the queue lists into kombu's
-- `unacked` bookkeeping, so a crash at any point loses nothing: a message is
-- either still in its list or recorded in `unacked` with its lease time.
--
-- KEYS[1] = unacked (hash), KEYS[2] = unacked_index (zset),
-- KEYS[3..] = queue lists in pop order (priority steps, then queues).
-- ARGV[1] = max messages, ARGV[2] = now (Unix seconds, float).
-- Returns a flat list: tag1, message1, tag2, message2, ... A message that
-- is not a kombu envelope with a delivery tag comes back with tag "" and is
-- not recorded: the worker reports and drops it.
local max = tonumber(ARGV[1])
local now = ARGV[2]
local out = {}
local count = 0
for i = 3, #KEYS do
    while count < max do
        local message = redis.call('RPOP', KEYS[i])
        if not message then break end
        local tag = ''
        local ok, envelope = pcall(cjson.decode, message)
        if ok and type(envelope) == 'table' and type(envelope.properties) == 'table'
            and type(envelope.properties.delivery_tag) == 'string' then
            tag = envelope.properties.delivery_tag
            local exchange, routing_key = '', ''
            local info = envelope.properties.delivery_info
            if type(info) == 'table' then
                if type(info.exchange) == 'string' then exchange = info.exchange end
                if type(info.routing_key) == 'string' then routing_key = info.routing_key end
            end
            redis.call('HSET', KEYS[1], tag,
                '[' .. message .. ',' .. cjson.encode(exchange) .. ',' .. cjson.encode(routing_key) .. ']')
            redis.call('ZADD', KEYS[2], now, tag)
        end
        count = count + 1
        out[#out + 1] = tag
        out[#out + 1] = message
    end
    if count >= max then break end
end
return out
