-- The Redis floor of `make bench-peers`: per job, only the Redis work any
-- at-least-once worker that stores results must do, with nothing else
-- (no worker, no parsing, one round trip per ARGV[1] jobs):
--   move the message to a processing list, write the result with its
--   expiry, PUBLISH it (Celery clients wait on that channel), remove the
--   message from the processing list (the ack).
-- KEYS[1] the queue, KEYS[2] the processing list.
-- ARGV[1] jobs per call, ARGV[2] result expiry in seconds, ARGV[3] jobs
-- done before this call (numbers the result keys).
-- Returns how many jobs this call did: 0 once the queue is empty.
local done = 0
local base = tonumber(ARGV[3])
for i = 1, tonumber(ARGV[1]) do
  local message = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not message then
    break
  end
  local id = 'floor-' .. (base + i)
  local key = 'celery-task-meta-' .. id
  local result = '{"status": "SUCCESS", "result": 5, "traceback": null, "children": [], '
    .. '"date_done": "2026-12-01T00:00:00.000000+00:00", "task_id": "' .. id .. '"}'
  redis.call('SET', key, result, 'EX', ARGV[2])
  redis.call('PUBLISH', key, result)
  redis.call('LREM', KEYS[2], 1, message)
  done = done + 1
end
return done
