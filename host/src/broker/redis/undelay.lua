-- Push delayed messages that are due back to their queues. One script per
-- batch: of several workers running it, each message is pushed by exactly
-- one, once.
--
-- KEYS[1] = chard:delayed (zset), KEYS[2] = chard:delayed:messages (hash)
-- ARGV[1] = push what is due up to this time (Unix ms), ARGV[2] = batch size
-- Returns how many were pushed.
--
-- RPUSH, as kombu's restore: the list is popped from the right, so a due
-- message is taken next instead of after the whole backlog.
local tags = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local pushed = 0
for _, tag in ipairs(tags) do
    local envelope = redis.call('HGET', KEYS[2], tag)
    local list = redis.call('HGET', KEYS[2], tag .. ':q')
    local kind = list and redis.call('TYPE', list)['ok']
    if envelope and list and kind ~= 'list' and kind ~= 'none' then
        -- Its queue became another kind of key: keep it, look again in an hour.
        redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + 3600000, tag)
    else
        if envelope and list then
            redis.call('RPUSH', list, envelope)
            pushed = pushed + 1
        end
        redis.call('ZREM', KEYS[1], tag)
        redis.call('HDEL', KEYS[2], tag, tag .. ':q')
    end
end
return pushed
