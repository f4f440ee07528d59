-- GET /api/v1/auth/me with the bearer token in $ACCESS_TOKEN.
dofile(os.getenv("LUA_DIR") .. "/report.lua")
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("ACCESS_TOKEN")
