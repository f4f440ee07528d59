-- GET with the browser's cookies from $BENCH_COOKIE (session cookie, and the cache cookie when on).
dofile(os.getenv("LUA_DIR") .. "/report.lua")
wrk.method = "GET"
wrk.headers["Cookie"] = os.getenv("BENCH_COOKIE")
