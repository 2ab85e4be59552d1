-- Global rate limit: reserve the next free slot for a task type, shared by
-- every worker (GCRA, the token bucket of capacity 1 that Celery's per-worker
-- limit also is). Redis's own clock is used, so workers' clocks may differ.
--
-- KEYS[1] = chard:rate:<task>      (the next free instant, microseconds)
-- ARGV[1] = interval between jobs, microseconds
-- Returns how long the caller must wait before running its job, microseconds.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local next_free = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(now, next_free)
local after = slot + interval
-- Expire the key once it no longer matters (plus a second of slack).
redis.call('SET', KEYS[1], string.format('%.0f', after), 'PX', math.ceil((after - now) / 1000) + 1000)
return slot - now
