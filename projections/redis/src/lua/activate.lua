-- Makes slot ARGV[1] the active one: the alias names it, it is marked active, and the slot
-- active before is marked retired.
--
-- KEYS[1] the projection's slots (hash: number -> JSON), KEYS[2] the alias.
-- Returns 1, or 0 when the slot does not exist (or is being dropped).
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry then
  return 0
end
local info = cjson.decode(entry)
if info.dropping then
  return 0
end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i] ~= ARGV[1] then
    local other = cjson.decode(all[i + 1])
    if other.state == 'active' then
      other.state = 'retired'
      redis.call('HSET', KEYS[1], all[i], cjson.encode(other))
    end
  end
end
info.state = 'active'
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(info))
redis.call('SET', KEYS[2], ARGV[1])
return 1
