-- Shared by the bench scripts (tests/bench/bench.mjs): one JSON line of results that the driver reads, so nothing is
-- parsed out of wrk's own table. Latencies are in microseconds.
function bench_done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format('BENCH {"rps":%.1f,"p50":%d,"p99":%d,"p999":%d,"errors":%d,"requests":%d}\n',
        summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
        latency:percentile(99.9), e.status + e.connect + e.read + e.write + e.timeout, summary.requests))
end

local threads = 0
function setup(thread)
    thread:set("tid", threads)
    threads = threads + 1
end

function init(args)
    math.randomseed(os.time() * 1000 + (tid or 0))
end

done = bench_done

-- The seeded days (BENCH_DAYS: comma-separated YYYY-MM-DD, set by bench.mjs).
function bench_days()
    local days = {}
    for d in string.gmatch(os.getenv("BENCH_DAYS"), "[^,]+") do
        days[#days + 1] = d
    end
    return days
end
