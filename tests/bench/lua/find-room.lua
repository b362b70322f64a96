-- Scenario 4b: Appointment/$find for a treatment (BENCH_VISIT_TYPE) that any of the 20 practitioners offers and that
-- needs a treatment room, over 30 days. Each window starts at a random minute before the first Slot of the first seeded
-- day (BENCH_DAYS) and ends 30 days later, so requests differ but every one covers the same Slots.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local days = bench_days()
local visit_type = os.getenv("BENCH_VISIT_TYPE")

request = function()
    local m = math.random(0, 479)
    local at = string.format("T%02d:%02d:00Z", math.floor(m / 60), m % 60)
    local path = string.format("%s/Appointment/$find?start=%s%s&end=%s%s&visit-type=%s&_count=20", wrk.path, days[1], at,
        days[31], at, visit_type)
    return wrk.format("GET", path, { ["Accept"] = "application/fhir+json" })
end
