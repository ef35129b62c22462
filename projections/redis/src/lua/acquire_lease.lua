-- Takes or renews a slot's lease for ARGV[1] for ARGV[2] milliseconds.
--
-- KEYS[1] the lease, KEYS[2] the slot's checkpoint (absent: no such slot, or one being
-- cleared).
-- Returns 1 when ARGV[1] holds the lease now, 0 when another owner does, -1 when the slot
-- does not exist. The holder is looked at first: a slot being cleared has no checkpoint, but
-- its clearer holds the lease (a dropped slot's lease is deleted with its checkpoint).
local holder = redis.call('GET', KEYS[1])
if holder ~= false and holder ~= ARGV[1] then
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  return -1
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
