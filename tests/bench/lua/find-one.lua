-- Scenario 4a: Appointment/$find for one practitioner over 7 days (BENCH_DAYS as in slot-day.lua), for the plain
-- consultation (BENCH_VISIT_TYPE), whose proposals come from the practitioner's free Slots.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local days = bench_days()
local visit_type = os.getenv("BENCH_VISIT_TYPE")

request = function()
    local i = math.random(1, #days - 7)
    local path = string.format("%s/Appointment/$find?start=%s&end=%s&practitioner=Practitioner/bench-dr-%d&visit-type=%s&_count=20",
        wrk.path, days[i], days[i + 7], math.random(0, 19), visit_type)
    return wrk.format("GET", path, { ["Accept"] = "application/fhir+json" })
end
