-- Scaling probe: one practitioner's Appointments of one day (BENCH_APPT_DAYS: the days of the API-written
-- Appointments, comma-separated YYYY-MM-DD, one past the last).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local days = bench_days("BENCH_APPT_DAYS")

request = function()
    local i = math.random(1, #days - 1)
    local path = string.format("%s/Appointment?practitioner=Practitioner/bench-dr-%d&date=ge%s&date=lt%s", wrk.path,
        math.random(0, 19), days[i], days[i + 1])
    return wrk.format("GET", path, { ["Accept"] = "application/fhir+json" })
end
