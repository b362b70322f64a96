-- Scenario 5a: $hold then $book of proposals that bench.mjs collected with $find beforehand (BENCH_PROPOSALS: a file of
-- proposal ids, one a line, no two at overlapping times of one practitioner), each booked for a seeded patient. wrk does
-- not say which connection an answer came on, so a granted hold is queued and booked by the next request this thread
-- sends, which is the same connection's next one.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

bench_counters = { "holds", "bookings", "unexpected", "exhausted" }
holds, bookings, unexpected, exhausted = 0, 0, 0, 0

local proposals, next_proposal, held = {}, 1, {}

function bench_init()
    proposals = bench_lines(os.getenv("BENCH_PROPOSALS"))
end

request = function()
    local id = table.remove(held)
    if id then
        local patient = string.format(',{"name":"patient-resource","resource":{"resourceType":"Patient","id":"bench-pat-%d"}}',
            math.random(0, 199))
        return wrk.format("POST", wrk.path .. "/Appointment/$book", bench_json, bench_appointment_parameters(id, patient))
    end
    if next_proposal > #proposals then
        -- more bookings than bench.mjs foresaw: start over (each answer is then a refusal, counted as an error)
        exhausted = exhausted + 1
        next_proposal = 1
    end
    id = proposals[next_proposal]
    next_proposal = next_proposal + 1
    return wrk.format("POST", wrk.path .. "/Appointment/$hold", bench_json, bench_appointment_parameters(id))
end

response = function(status, headers, body)
    if status ~= 200 then
        unexpected = unexpected + 1
    elseif string.find(body, '"status":"pending"', 1, true) then
        holds = holds + 1
        held[#held + 1] = string.match(body, '"id":"(prop%-%x+%-%d+)"')
    elseif string.find(body, '"status":"booked"', 1, true) then
        bookings = bookings + 1
    else
        unexpected = unexpected + 1
    end
end
