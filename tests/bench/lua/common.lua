-- Shared by the bench scripts (tests/bench/bench.mjs): one JSON line of results that the driver reads, so nothing is
-- parsed out of wrk's own table. Latencies are in microseconds.
--
-- A script that counts outcomes itself names its per-thread counters (globals) in bench_counters; done() sums them over
-- the threads. Counters named in bench_expected count answers that are part of the scenario (a 409 when clients race
-- for one time), which wrk counts as status errors: they are taken out of "errors".
bench_counters = {}
bench_expected = {}

local threads = {}
function setup(thread)
    thread:set("tid", #threads)
    threads[#threads + 1] = thread
end

-- Scripts that need their thread id (set by setup, after the script's top level ran) define bench_init.
function init(args)
    math.randomseed(os.time() * 1000 + (tid or 0))
    if bench_init then
        bench_init()
    end
end

function bench_done(summary, latency, requests)
    local e = summary.errors
    local fields, expected = {}, 0
    for _, name in ipairs(bench_counters) do
        local n = 0
        for _, t in ipairs(threads) do
            n = n + (t:get(name) or 0)
        end
        fields[#fields + 1] = string.format(',"%s":%d', name, n)
        if bench_expected[name] then
            expected = expected + n
        end
    end
    io.write(string.format('BENCH {"rps":%.1f,"p50":%d,"p99":%d,"p999":%d,"errors":%d,"requests":%d,"seconds":%.3f%s}\n',
        summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
        latency:percentile(99.9), e.connect + e.read + e.write + e.timeout + e.status - expected, summary.requests,
        summary.duration / 1e6, table.concat(fields)))
end

done = bench_done

-- The seeded days (BENCH_DAYS, or the variable named: comma-separated YYYY-MM-DD, set by bench.mjs).
function bench_days(variable)
    local days = {}
    for d in string.gmatch(os.getenv(variable or "BENCH_DAYS"), "[^,]+") do
        days[#days + 1] = d
    end
    return days
end

-- Lines of a file (BENCH_PROPOSALS and the like), those of this thread only: line i goes to thread i mod BENCH_THREADS.
function bench_lines(file)
    local nthreads = tonumber(os.getenv("BENCH_THREADS"))
    local mine, i = {}, 0
    for line in io.lines(file) do
        if i % nthreads == (tid or 0) then
            mine[#mine + 1] = line
        end
        i = i + 1
    end
    return mine
end

-- A FHIR Parameters body with one Appointment reference (what $hold and $book take).
function bench_appointment_parameters(id, extra)
    return string.format('{"resourceType":"Parameters","parameter":[{"name":"appointment-reference",' ..
        '"valueReference":{"reference":"Appointment/%s"}}%s]}', id, extra or "")
end

bench_json = { ["Content-Type"] = "application/fhir+json", ["Accept"] = "application/fhir+json" }
