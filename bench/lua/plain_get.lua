-- A plain GET (the JWKS).
dofile(os.getenv("LUA_DIR") .. "/report.lua")
wrk.method = "GET"
