-- Push a message only if this (entry, due time) was not pushed before: the
-- marker and the push are one atomic step, so of several beats sending the
-- same periodic run exactly one succeeds.
--
-- KEYS[1] = marker key, KEYS[2] = queue list
-- ARGV[1] = envelope, ARGV[2] = marker TTL in seconds
-- Returns 1 if pushed, 0 if another sender was first.
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
    redis.call('LPUSH', KEYS[2], ARGV[1])
    return 1
end
return 0
