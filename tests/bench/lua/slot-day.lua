-- Scenario 2: one day of one schedule's free Slots (BENCH_DAYS: the seeded days, comma-separated YYYY-MM-DD).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local days = bench_days()

request = function()
    local i = math.random(1, #days - 1)
    local path = string.format("%s/Slot?schedule=Schedule/bench-sched-%d&start=ge%s&start=lt%s&status=free", wrk.path,
        math.random(0, 19), days[i], days[i + 1])
    return wrk.format("GET", path, { ["Accept"] = "application/fhir+json" })
end
