-- The first step of clearing slot ARGV[1]: delete its checkpoint, so no commit reaches it
-- while its keys are deleted, and record that it is rebuilt from store ARGV[2].
--
-- KEYS[1] the projection's slots, KEYS[2] the slot's checkpoint.
-- Returns 1, or 0 when the slot does not exist (or is being dropped).
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry then
  return 0
end
local info = cjson.decode(entry)
if info.dropping then
  return 0
end
info.store = ARGV[2]
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(info))
redis.call('DEL', KEYS[2])
return 1
