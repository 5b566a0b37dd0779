-- wrk script for swarmmesh: counts which task answered (the task server's
-- JSON body names it) and prints one machine-readable line at the end:
--   @@wrk {"percentiles_us": {...}, "mean_us": ..., "tasks": {"app.1": n, ...}, ...}
-- Used by swarmmesh.traffic.tools.wrk.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   tasks = {}
   connections = 0
end

function response(status, headers, body)
   local t = body and string.match(body, '"task": *"([^"]+)"')
   if t then
      tasks[t] = (tasks[t] or 0) + 1
   end
end

local function json_counts(counts)
   local parts = {}
   for k, v in pairs(counts) do
      table.insert(parts, string.format('"%s": %d', k, v))
   end
   return "{" .. table.concat(parts, ", ") .. "}"
end

function done(summary, latency, requests)
   local all = {}
   for _, thread in ipairs(threads) do
      local t = thread:get("tasks") or {}
      for k, v in pairs(t) do
         all[k] = (all[k] or 0) + v
      end
   end
   local pcts = {}
   for _, p in ipairs({50, 75, 90, 95, 99, 99.9}) do
      table.insert(pcts, string.format('"%g": %d', p, latency:percentile(p)))
   end
   local e = summary.errors
   io.write(string.format(
      '@@wrk {"percentiles_us": {%s}, "mean_us": %f, "stdev_us": %f, "max_us": %d, '
      .. '"min_us": %d, "requests": %d, "duration_us": %d, "tasks": %s, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
      table.concat(pcts, ", "), latency.mean, latency.stdev, latency.max, latency.min,
      summary.requests, summary.duration, json_counts(all),
      e.connect, e.read, e.write, e.status, e.timeout))
end
