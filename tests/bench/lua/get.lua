-- GET of the URL given to wrk (the /healthz ceiling).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
