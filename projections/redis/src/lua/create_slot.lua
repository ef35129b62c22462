-- A slot to build a version from a store into: with ARGV[2] == '1' (resume) the newest slot
-- still building that version from that store, if any; otherwise a new slot numbered above
-- every earlier one, with its checkpoint at start, recording the store.
--
-- KEYS[1] the projection's slots (hash: number -> JSON), KEYS[2] its slot counter.
-- ARGV[1] the version, ARGV[2] '1' to resume, ARGV[3] the start of the slots' hash tag
-- ("{<prefix>:<projection>:"), to which the slot number and "}:checkpoint" are appended,
-- ARGV[4] the store's identity.
--
-- Returns {slot, 1 if created else 0}.
local version = tonumber(ARGV[1])
if ARGV[2] == '1' then
  local best = nil
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local slot = tonumber(all[i])
    local info = cjson.decode(all[i + 1])
    if info.state == 'building' and info.version == version and not info.dropping
      and info.store == ARGV[4] and (best == nil or slot > best) then
      best = slot
    end
  end
  if best ~= nil then
    return {best, 0}
  end
end

local slot = redis.call('INCR', KEYS[2])
while redis.call('HEXISTS', KEYS[1], slot) == 1 do
  slot = redis.call('INCR', KEYS[2])
end
redis.call('HSET', KEYS[1], slot, cjson.encode({version = version, state = 'building', store = ARGV[4]}))
redis.call('SET', ARGV[3] .. slot .. '}:checkpoint', 'start')
return {slot, 1}
