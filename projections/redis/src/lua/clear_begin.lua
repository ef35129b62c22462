-- The first step of clearing slot ARGV[1]: delete its checkpoint, so no commit reaches it
-- while its keys are deleted.
--
-- KEYS[1] the projection's slots, KEYS[2] the slot's checkpoint.
-- Returns 1, or 0 when the slot does not exist (or is being dropped).
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry or cjson.decode(entry).dropping then
  return 0
end
redis.call('DEL', KEYS[2])
return 1
