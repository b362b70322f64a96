-- Scenario 1: GET /Slot/{id} of random seeded Slots.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

request = function()
    local id = string.format("bench-slot-%d-%d-%d", math.random(0, 19), math.random(0, 29), math.random(0, 15))
    return wrk.format("GET", wrk.path .. "/Slot/" .. id, { ["Accept"] = "application/fhir+json" })
end
