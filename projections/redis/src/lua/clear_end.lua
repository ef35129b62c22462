-- The last step of clearing slot ARGV[1]: its checkpoint back to start, unless the slot was
-- dropped meanwhile.
--
-- KEYS[1] the projection's slots, KEYS[2] the slot's checkpoint.
-- Returns 1, or 0 when the slot no longer exists.
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry or cjson.decode(entry).dropping then
  return 0
end
redis.call('SET', KEYS[2], 'start')
return 1
