-- GET with the Cookie header in $COOKIE (bench/paired.py: the peer's get-session).
dofile(os.getenv("LUA_DIR") .. "/report.lua")
wrk.method = "GET"
wrk.headers["Cookie"] = os.getenv("COOKIE")
