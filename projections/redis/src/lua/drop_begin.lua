-- The first step of dropping slot ARGV[1]: mark it as being dropped and delete its
-- checkpoint and lease, so no commit or lease reaches it any more. Its other keys are
-- deleted next, then its entry.
--
-- KEYS[1] the projection's slots, KEYS[2] the alias, KEYS[3] the slot's checkpoint,
-- KEYS[4] its lease.
-- Returns 1, 0 when the slot does not exist, -1 when it is the active slot.
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry then
  return 0
end
local info = cjson.decode(entry)
if info.state == 'active' or redis.call('GET', KEYS[2]) == ARGV[1] then
  return -1
end
info.dropping = true
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(info))
redis.call('DEL', KEYS[3], KEYS[4])
return 1
