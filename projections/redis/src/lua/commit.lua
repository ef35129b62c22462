-- A commit that parks or releases dead letters (the others are MULTI … EXEC, see commit.rs), atomically:
-- check the slot's checkpoint, apply the batch, update the dead letters, store the new checkpoint.
--
-- KEYS[1] the slot's checkpoint, KEYS[2] its dead letters (hash), KEYS[3] their order
-- (sorted set), KEYS[3 + i] the key of operation i. Every key carries the slot's hash tag.
-- ARGV[1] the expected checkpoint, ARGV[2] the new one, ARGV[3] the number of operations,
-- then per operation its command and arguments (after the key), then the number of dead
-- letters to remove and their event ids, then the number to park and per letter its event
-- id and JSON.
--
-- Returns {0, actual checkpoint or nil} when the checkpoint is not the expected one (nothing
-- written; nil: the slot was dropped), else {1, i, error, i, error, ...} listing the
-- operations Redis refused (WRONGTYPE, not an integer...). Redis cannot undo the writes
-- before a refused one, so a refusal does not stop the commit: it is reported.
local current = redis.call('GET', KEYS[1])
if current ~= ARGV[1] then
  return {0, current}
end

local arity = {
  SET = 1, DEL = 0, INCRBY = 1,
  HSET = 2, HDEL = 1, HINCRBY = 2,
  SADD = 1, SREM = 1,
  ZADD = 2, ZREM = 1,
}
local ops = tonumber(ARGV[3])
-- Check the whole batch before writing anything.
local a = 4
for i = 1, ops do
  local n = arity[ARGV[a]]
  if n == nil then
    return redis.error_reply('ERR foldline commit: unknown operation ' .. tostring(ARGV[a]))
  end
  a = a + 1 + n
end

local result = {1}
local pcall = redis.pcall
a = 4
for i = 1, ops do
  local command = ARGV[a]
  local n = arity[command]
  -- Arguments by index rather than `unpack`: a C call per operation saved.
  local reply
  if n == 1 then
    reply = pcall(command, KEYS[3 + i], ARGV[a + 1])
  elseif n == 2 then
    reply = pcall(command, KEYS[3 + i], ARGV[a + 1], ARGV[a + 2])
  else
    reply = pcall(command, KEYS[3 + i])
  end
  if type(reply) == 'table' and reply.err then
    result[#result + 1] = i
    result[#result + 1] = reply.err
  end
  a = a + 1 + n
end

local unpark = tonumber(ARGV[a])
a = a + 1
for i = 1, unpark do
  redis.call('HDEL', KEYS[2], ARGV[a])
  redis.call('ZREM', KEYS[3], ARGV[a])
  a = a + 1
end

local park = tonumber(ARGV[a])
a = a + 1
for i = 1, park do
  if redis.call('HSETNX', KEYS[2], ARGV[a], ARGV[a + 1]) == 1 then
    local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
    local order = 1
    if last[2] then
      order = tonumber(last[2]) + 1
    end
    redis.call('ZADD', KEYS[3], order, ARGV[a])
  end
  a = a + 2
end

redis.call('SET', KEYS[1], ARGV[2])
return result
