-- Push each ARGV[i] to the list KEYS[i], all or nothing.
--
-- A queue name may come from a message (a routing key, a callback's queue)
-- and name a key that is not a list: LPUSH would fail with WRONGTYPE on
-- every retry. So every key's type is checked first; if one holds anything
-- but a list, nothing is pushed and its index is returned, and the caller
-- can retry the batch without that message and push no message twice.
-- Returns 0 when every message was pushed.
for i = 1, #KEYS do
    local kind = redis.call('TYPE', KEYS[i])['ok']
    if kind ~= 'list' and kind ~= 'none' then return i end
end
for i = 1, #KEYS do
    redis.call('LPUSH', KEYS[i], ARGV[i])
end
return 0
