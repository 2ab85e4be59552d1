-- Store a progress document (Celery's update_state) unless the task has
-- already reached a ready state: a report coalesced by the worker may reach
-- Redis after the job's final result, and must then be dropped.
-- KEYS[1] = celery-task-meta-<id>; ARGV[1] = document, ARGV[2] = TTL seconds.
local current = redis.call('GET', KEYS[1])
if current then
    local ok, doc = pcall(cjson.decode, current)
    if ok and type(doc) == 'table' then
        local status = doc['status']
        if status == 'SUCCESS' or status == 'FAILURE' or status == 'REVOKED' then return 0 end
    end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
