-- POST /api/v1/auth/refresh, chained. A refresh token is single-use, so every request spends one
-- and the refreshToken of its response is the next one to spend.
--
-- wrk does not tell the script which connection a request or response belongs to, so each thread
-- keeps a pool of live tokens ($TOKENS_FILE: one token a line, from one login each; thread i takes
-- lines i*$TOKENS_PER_THREAD+1 ...). request() takes a token from the pool and response() puts the
-- successor back; a connection writes its next request only after its response was handled, so no
-- token is ever sent twice and the grace-window replay path is never taken: every request measured
-- is a real rotation.
--
-- Each thread gets one token more than it has connections: wrk 4.1 calls request() once on thread 0
-- before the run to check the script (script_verify_request) and throws that request away, so that
-- token is never sent. On the other threads the spare one just waits its turn in the pool.
dofile(os.getenv("LUA_DIR") .. "/report.lua")

function init(args)
  pool = {}
  local per = tonumber(os.getenv("TOKENS_PER_THREAD"))
  local first, n = id * per, 0
  for line in io.lines(os.getenv("TOKENS_FILE")) do
    if n >= first and n < first + per then
      table.insert(pool, line)
    end
    n = n + 1
  end
end

local headers = { ["Content-Type"] = "application/json" }

request = function()
  local token = table.remove(pool, 1)
  if token == nil then
    starved = starved + 1 -- a chain broke (a failed response): this request is bound to fail
    token = "mrt_chain_broken"
  end
  return wrk.format("POST", nil, headers, '{"refreshToken":"' .. token .. '"}')
end

response = function(status, hdrs, body)
  count_status(status)
  local token = body:match('"refreshToken"%s*:%s*"([^"]+)"')
  if token ~= nil then
    table.insert(pool, token)
  end
end
