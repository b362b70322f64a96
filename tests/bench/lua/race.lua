-- Scenario 5b: every client chases the same few times. A window is one hour of one practitioner of the booking fixtures
-- (two 30-minute times); a client $finds in the current window, $holds what it was offered and $books what it holds,
-- and a 409 is a lost race. Once a window offers nothing, the thread moves on to the next (practitioner by
-- practitioner, hour by hour, weekday by weekday from BENCH_RACE_DAY0), so both threads and all their connections stay
-- on the same times. The window a $find asked about comes back in X-Request-Id (the server echoes it).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

bench_counters = { "finds", "holds", "wins", "conflicts", "unexpected" }
bench_expected = { conflicts = true }
finds, holds, wins, conflicts, unexpected = 0, 0, 0, 0, 0

local day0 = tonumber(os.getenv("BENCH_RACE_DAY0"))
local visit_type = os.getenv("BENCH_VISIT_TYPE")
local window, to_hold, to_book = 0, {}, {}

local function find(k)
    local practitioner, hour, weekday = k % 20, 8 + math.floor(k / 20) % 8, math.floor(k / 160)
    local from = day0 + (math.floor(weekday / 5) * 7 + weekday % 5) * 86400 + hour * 3600
    local path = string.format("%s/Appointment/$find?start=%s&end=%s&practitioner=Practitioner/bench-book-dr-%d&visit-type=%s",
        wrk.path, os.date("!%Y-%m-%dT%H:%M:%SZ", from), os.date("!%Y-%m-%dT%H:%M:%SZ", from + 3600), practitioner, visit_type)
    return wrk.format("GET", path, { ["Accept"] = "application/fhir+json", ["X-Request-Id"] = "racewindow" .. k })
end

request = function()
    local id = table.remove(to_book)
    if id then
        return wrk.format("POST", wrk.path .. "/Appointment/$book", bench_json, bench_appointment_parameters(id))
    end
    id = table.remove(to_hold, 1)
    if id then
        return wrk.format("POST", wrk.path .. "/Appointment/$hold", bench_json, bench_appointment_parameters(id))
    end
    return find(window)
end

response = function(status, headers, body)
    if status == 409 then
        conflicts = conflicts + 1
        return
    end
    if status ~= 200 then
        unexpected = unexpected + 1
        return
    end
    local asked = string.match(headers["x-request-id"] or headers["X-Request-Id"] or "", "^racewindow(%d+)$")
    if asked then
        finds = finds + 1
        local offered = 0
        for id in string.gmatch(body, '"id":"(prop%-%x+%-%d+)"') do
            to_hold[#to_hold + 1] = id
            offered = offered + 1
        end
        if offered == 0 and tonumber(asked) >= window then
            window = tonumber(asked) + 1
        end
    elseif string.find(body, '"status":"pending"', 1, true) then
        holds = holds + 1
        to_book[#to_book + 1] = string.match(body, '"id":"(prop%-%x+%-%d+)"')
    elseif string.find(body, '"status":"booked"', 1, true) then
        wins = wins + 1
    else
        unexpected = unexpected + 1
    end
end
