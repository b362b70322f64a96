-- Scenario 3: POST /Appointment, booked, one practitioner participant, a distinct time for every request (per thread
-- its own range), so no two collide.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local n = 0
local base = 1830297600 -- 2028-01-01T00:00:00Z

request = function()
    n = n + 1
    local start = base + ((tid or 0) * 1000000 + n) * 1800
    local body = string.format('{"resourceType":"Appointment","status":"booked","start":"%s","end":"%s",' ..
        '"participant":[{"actor":{"reference":"Practitioner/bench-dr-%d"},"status":"accepted"}]}',
        os.date("!%Y-%m-%dT%H:%M:%SZ", start), os.date("!%Y-%m-%dT%H:%M:%SZ", start + 1800), n % 20)
    return wrk.format("POST", wrk.path .. "/Appointment",
        { ["Content-Type"] = "application/fhir+json", ["Prefer"] = "return=minimal" }, body)
end
