"""The Lua scripts that read and change one project's holdings atomically inside Redis.

Every script gets the six keys of one scope (a project, see :mod:`shared.admission.ledger`,
and :func:`keys_of`), all in one hash slot, and starts the same way: ``ARGV[1]`` is the time
in ms (empty: the server's clock), ``ARGV[2]`` and ``ARGV[3]`` the time-to-live of a job
holding and of a file holding; then it drops every holding older than its TTL, so a holder
whose worker died leaks only that long.

Numbers are kept as integer strings: increments reuse the caller's or the stored text, never
a Lua double printed back.
"""

from __future__ import annotations

from shared import names

_PRELUDE = """
local LIVE, JOB_CLAIMS, TOKENS = KEYS[1], KEYS[2], KEYS[3]
local FILES, FILE_CLAIMS, FILE_BYTES = KEYS[4], KEYS[5], KEYS[6]

local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function ms(x) return string.format('%.0f', x) end

local function drop_job(holder)
  local claim = redis.call('HGET', JOB_CLAIMS, holder)
  redis.call('ZREM', LIVE, holder)
  redis.call('HDEL', JOB_CLAIMS, holder)
  if claim then
    local tokens, model = string.match(claim, '^(%d+) (.*)$')
    if redis.call('HINCRBY', TOKENS, model, '-' .. tokens) <= 0 then
      redis.call('HDEL', TOKENS, model)
    end
  end
end

local function drop_file(holder)
  local size = redis.call('HGET', FILE_CLAIMS, holder)
  redis.call('ZREM', FILES, holder)
  redis.call('HDEL', FILE_CLAIMS, holder)
  if size then
    if redis.call('DECRBY', FILE_BYTES, size) <= 0 then redis.call('DEL', FILE_BYTES) end
  end
end

local function prune(set, ttl, drop)
  local old = redis.call('ZRANGEBYSCORE', set, '-inf', '(' .. ms(now - ttl), 'LIMIT', 0, 1000)
  for _, holder in ipairs(old) do drop(holder) end
end
prune(LIVE, tonumber(ARGV[2]), drop_job)
prune(FILES, tonumber(ARGV[3]), drop_file)

local function enqueued(model) return tonumber(redis.call('HGET', TOKENS, model) or '0') end
local function file_bytes() return tonumber(redis.call('GET', FILE_BYTES) or '0') end

-- fits(current, request, budget) of shared/admission/rules.py
local function fits(current, request, budget)
  return budget == nil or current == 0 or current + request <= budget
end

-- Drop a holding only if it is still the one the caller saw (expected '' : any).
local function release(set, holder, expected, drop)
  local acquired = redis.call('ZSCORE', set, holder)
  if not acquired then return 0 end
  if expected ~= '' and tonumber(acquired) ~= tonumber(expected) then return 0 end
  drop(holder)
  return 1
end
"""

#: ARGV[4..8]: holder, model, tokens, max live jobs, token budget ('' = none).
#: Returns {verdict, live jobs, enqueued tokens of the model}; verdict is one of
#: admit | held (this holder already has a slot) | jobs | tokens (the limit that said no).
ACQUIRE_JOB = (
    _PRELUDE
    + """
local holder, model, tokens = ARGV[4], ARGV[5], ARGV[6]
local max_jobs, budget = tonumber(ARGV[7]), tonumber(ARGV[8])
local live, enq = redis.call('ZCARD', LIVE), enqueued(model)
if redis.call('ZSCORE', LIVE, holder) then
  redis.call('ZADD', LIVE, 'XX', ms(now), holder)
  return {'held', live, enq}
end
if live >= max_jobs then return {'jobs', live, enq} end
if not fits(enq, tonumber(tokens), budget) then return {'tokens', live, enq} end
redis.call('ZADD', LIVE, ms(now), holder)
redis.call('HSET', JOB_CLAIMS, holder, tokens .. ' ' .. model)
return {'admit', live + 1, redis.call('HINCRBY', TOKENS, model, tokens)}
"""
)

#: ARGV[4..5]: holder, acquire time it must still have ('' = any). Returns 1 if released.
RELEASE_JOB = _PRELUDE + "return release(LIVE, ARGV[4], ARGV[5], drop_job)\n"

#: ARGV[4..6]: holder, bytes, budget. Returns {verdict, bytes held by the key};
#: verdict is one of admit | held | bytes.
ACQUIRE_FILE = (
    _PRELUDE
    + """
local holder, size, budget = ARGV[4], ARGV[5], tonumber(ARGV[6])
local held = file_bytes()
if redis.call('ZSCORE', FILES, holder) then
  redis.call('ZADD', FILES, 'XX', ms(now), holder)
  return {'held', held}
end
if not fits(held, tonumber(size), budget) then return {'bytes', held} end
redis.call('ZADD', FILES, ms(now), holder)
redis.call('HSET', FILE_CLAIMS, holder, size)
return {'admit', redis.call('INCRBY', FILE_BYTES, size)}
"""
)

#: ARGV[4..5]: holder, acquire time it must still have ('' = any). Returns 1 if released.
RELEASE_FILE = _PRELUDE + "return release(FILES, ARGV[4], ARGV[5], drop_file)\n"

#: ARGV[4..5]: model, holder ('' = none).
#: Returns {live jobs, enqueued tokens of the model, file bytes, 1 if the holder holds here}.
LOAD = (
    _PRELUDE
    + """
local model, holder = ARGV[4], ARGV[5]
local held = 0
if holder ~= '' and (redis.call('ZSCORE', LIVE, holder) or redis.call('ZSCORE', FILES, holder))
then held = 1 end
return {redis.call('ZCARD', LIVE), enqueued(model), file_bytes(), held}
"""
)

#: Returns {now, {model, tokens, ...}, file bytes, {holder, acquired, ...} of jobs,
#: {holder, "<tokens> <model>", ...}, {holder, acquired, ...} of files, {holder, bytes, ...}}.
SNAPSHOT = (
    _PRELUDE
    + """
return {
  ms(now),
  redis.call('HGETALL', TOKENS),
  file_bytes(),
  redis.call('ZRANGE', LIVE, 0, -1, 'WITHSCORES'),
  redis.call('HGETALL', JOB_CLAIMS),
  redis.call('ZRANGE', FILES, 0, -1, 'WITHSCORES'),
  redis.call('HGETALL', FILE_CLAIMS),
}
"""
)


def keys_of(scope: str) -> list[str]:
    """The six Redis keys every script takes, in its ``KEYS`` order.

    ``scope`` is ``project-<label>``, or a key fingerprint counted on its own.
    """
    return [
        names.redis_live_jobs(scope),
        names.redis_job_claims(scope),
        names.redis_tokens(scope),
        names.redis_file_holders(scope),
        names.redis_file_claims(scope),
        names.redis_file_bytes(scope),
    ]
