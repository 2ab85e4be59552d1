-- Put messages recorded in `unacked` back on their queues, the way kombu's
-- restore does: RPUSH (so they are popped next) to the queue named by the
-- stored routing key plus the priority bucket suffix, flagged `redelivered`.
--
-- KEYS[1] = unacked (hash), KEYS[2] = unacked_index (zset), KEYS[3] = unacked_mutex
-- Mode "expired": ARGV[2] = cutoff score, ARGV[3] = max entries. Restores
--   leases older than the cutoff (a dead or stuck consumer); skipped while a
--   kombu worker holds `unacked_mutex` for its own sweep. Returns the count,
--   or -1 when skipped.
-- Mode "tags": ARGV[2..] = delivery tags this worker gives back (shutdown).
local tags
if ARGV[1] == 'expired' then
    if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
    tags = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
else
    tags = {}
    for i = 2, #ARGV do tags[#tags + 1] = ARGV[i] end
end
local restored = 0
for _, tag in ipairs(tags) do
    local stored = redis.call('HGET', KEYS[1], tag)
    redis.call('ZREM', KEYS[2], tag)
    redis.call('HDEL', KEYS[1], tag)
    if stored then
        local ok, entry = pcall(cjson.decode, stored)
        if ok and type(entry) == 'table' and type(entry[1]) == 'table' then
            local envelope, routing_key = entry[1], entry[3]
            if type(envelope.headers) ~= 'table' then envelope.headers = {} end
            if type(envelope.properties) ~= 'table' then envelope.properties = {} end
            if type(envelope.properties.delivery_info) ~= 'table' then envelope.properties.delivery_info = {} end
            envelope.headers.redelivered = true
            envelope.properties.delivery_info.redelivered = true
            if type(routing_key) ~= 'string' or routing_key == '' then routing_key = 'celery' end
            local priority = tonumber(envelope.properties.priority) or 0
            if priority > 9 then priority = 9 end
            local bucket = 0
            if priority >= 9 then bucket = 9 elseif priority >= 6 then bucket = 6 elseif priority >= 3 then bucket = 3 end
            local key = routing_key
            if bucket > 0 then key = routing_key .. '\6\22' .. bucket end
            redis.call('RPUSH', key, cjson.encode(envelope))
            restored = restored + 1
        end
    end
end
return restored
