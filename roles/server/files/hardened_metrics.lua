-- hardened_metrics: the Prometheus endpoint of hardened.openresty.server (text format
-- 0.0.4), installed by the role; see the role's README for the metric names.
--
-- A request is served by one worker, which can only measure its own Lua VM. So every
-- worker publishes its numbers into the shared dict every `interval` seconds (a timer that
-- hardened_worker starts at init_worker), and the endpoint renders what all workers
-- published. An entry expires after three intervals: a worker that stopped publishing
-- disappears instead of reporting old numbers.

local guard = require("hardened_guard")
local names = require("hardened_names")

local _M = {}

local config = {
    interval = 5,
}

-- The publisher is itself a timer: pending while it waits, running while it publishes.
-- The numbers leave it out, so that they show the application's timers only.
local publisher_started = false

local function metrics_dict()
    return ngx.shared[guard.DICT]
end

-- Records this worker's numbers: "<vm bytes> <pending timers> <running timers> <time>".
local function publish(in_publisher)
    local dict, id = metrics_dict(), ngx.worker.id()
    if not dict or not id then
        return
    end
    local pending = ngx.timer.pending_count() - (publisher_started and 1 or 0)
    local running = ngx.timer.running_count() - (in_publisher and 1 or 0)
    local line = string.format("%.0f %d %d %.3f", collectgarbage("count") * 1024,
                               pending, running, ngx.now())
    local ok, err = dict:set(names.metrics_worker_key .. id, line, config.interval * 3)
    if not ok then
        ngx.log(ngx.ERR, "hardened_metrics: cannot publish worker ", id, ": ", err)
    end
end

-- A worker that nginx told to exit (a reload or a stop) runs its pending timers once with
-- premature set, as it starts to drain: it records its pid until the metrics see it gone.
local function on_timer(premature)
    if not premature then
        publish(true)
        return
    end
    local dict = metrics_dict()
    if dict then
        dict:set(names.metrics_draining_key .. ngx.worker.pid(), ngx.now())
    end
end

-- Starts this worker's publisher; called from hardened_worker.init_worker().
function _M.start(options)
    for key, value in pairs(options or {}) do
        config[key] = value
    end
    -- Cache manager and loader processes have no worker id and serve no Lua.
    if not metrics_dict() or not ngx.worker.id() then
        return
    end
    local ok, err = ngx.timer.every(config.interval, on_timer)
    if ok then
        publisher_started = true
    else
        ngx.log(ngx.ERR, "hardened_metrics: cannot start the publisher: ", err)
    end
    publish(false)
end

-- Exposition (Prometheus text format 0.0.4).

local function label_value(value)
    return (tostring(value):gsub("\\", "\\\\"):gsub("\n", "\\n"):gsub('"', '\\"'))
end

local function number(value)
    if value == math.floor(value) and math.abs(value) < 2 ^ 53 then
        return string.format("%d", value)
    end
    return string.format("%.15g", value)
end

local function family(out, name, kind, help, samples)
    out[#out + 1] = string.format("# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
    for _, sample in ipairs(samples) do
        local labels = {}
        for _, pair in ipairs(sample.labels or {}) do
            labels[#labels + 1] = string.format('%s="%s"', pair[1], label_value(pair[2]))
        end
        if #labels > 0 then
            out[#out + 1] = string.format("%s{%s} %s\n", name, table.concat(labels, ","),
                                          number(sample.value))
        else
            out[#out + 1] = string.format("%s %s\n", name, number(sample.value))
        end
    end
end

local function sorted_keys(map)
    local keys = {}
    for key in pairs(map) do
        keys[#keys + 1] = key
    end
    table.sort(keys)
    return keys
end

-- The worker id of a key "<prefix><id>", or nil for any other key.
local function worker_id(key, prefix)
    if key:sub(1, #prefix) == prefix then
        return key:sub(#prefix + 1):match("^%d+$")
    end
    return nil
end

local function worker_samples(dict)
    local workers = {}
    for _, key in ipairs(dict:get_keys(0)) do
        local id = worker_id(key, names.metrics_worker_key)
        local line = id and dict:get(key)
        if line then
            local bytes, pending, running, time = line:match("^(%S+) (%S+) (%S+) (%S+)$")
            if bytes then
                workers[tonumber(id)] = { tonumber(bytes), tonumber(pending), tonumber(running),
                                          tonumber(time) }
            end
        end
    end
    local columns = { {}, {}, {}, {} }
    for _, id in ipairs(sorted_keys(workers)) do
        for index, value in ipairs(workers[id]) do
            table.insert(columns[index], { labels = { { "worker", id } }, value = value })
        end
    end
    return columns
end

-- Workers of an earlier generation still finishing their connections: those recorded by
-- on_timer whose process still exists. A record whose process is gone is removed.
local function draining_count(dict)
    local count = 0
    for _, key in ipairs(dict:get_keys(0)) do
        local pid = worker_id(key, names.metrics_draining_key)
        if pid then
            local stat = io.open("/proc/" .. pid .. "/stat")
            if stat then
                stat:close()
                count = count + 1
            else
                dict:delete(key)
            end
        end
    end
    return count
end

-- Releases recorded at init_worker (see hardened_worker): key release_worker_key .. <id>,
-- value the release id that worker loaded, empty when it could not load one.
local function release_samples()
    local dict = ngx.shared[names.release_dict]
    local samples = {}
    if not dict then
        return samples
    end
    local releases = {}
    for _, key in ipairs(dict:get_keys(0)) do
        local id = worker_id(key, names.release_worker_key)
        local release = id and dict:get(key)
        if release ~= nil and release ~= "" then
            releases[tonumber(id)] = release
        end
    end
    for _, id in ipairs(sorted_keys(releases)) do
        samples[#samples + 1] = { labels = { { "worker", id }, { "release", releases[id] } }, value = 1 }
    end
    return samples
end

local function shared_dict_samples()
    local capacity, free = {}, {}
    for _, name in ipairs(sorted_keys(ngx.shared)) do
        local dict = ngx.shared[name]
        table.insert(capacity, { labels = { { "dict", name } }, value = dict:capacity() })
        table.insert(free, { labels = { { "dict", name } }, value = dict:free_space() })
    end
    return capacity, free
end

local function stub_status()
    local res = ngx.location.capture(names.stub_status_path)
    if res.status ~= 200 then
        return nil
    end
    local body = res.body
    local active = body:match("Active connections: (%d+)")
    local accepted, handled, requests = body:match("(%d+) (%d+) (%d+)")
    local reading, writing, waiting = body:match("Reading: (%d+) Writing: (%d+) Waiting: (%d+)")
    if not (active and accepted and reading) then
        return nil
    end
    return {
        active = tonumber(active), accepted = tonumber(accepted), handled = tonumber(handled),
        requests = tonumber(requests), reading = tonumber(reading), writing = tonumber(writing),
        waiting = tonumber(waiting),
    }
end

function _M.render()
    local out = {}
    local dict = metrics_dict()
    if dict then
        local vm, pending, running, published = unpack(worker_samples(dict))
        family(out, "openresty_lua_vm_bytes", "gauge",
               'Memory in use by the worker\'s Lua VM (collectgarbage("count")).', vm)
        family(out, "openresty_lua_timers_pending", "gauge",
               "Pending ngx.timer timers of the worker (the metrics publisher not counted).", pending)
        family(out, "openresty_lua_timers_running", "gauge",
               "Running ngx.timer timers of the worker (the metrics publisher not counted).", running)
        family(out, "openresty_lua_worker_published_timestamp_seconds", "gauge",
               "When the worker last published these numbers.", published)

        family(out, "openresty_workers_draining", "gauge",
               "Workers of an earlier generation still finishing their connections after a reload.",
               { { value = draining_count(dict) } })

        family(out, "openresty_lua_regex_match_limit_hits_total", "counter",
               "ngx.re calls through hardened_guard stopped by lua_regex_match_limit.",
               { { value = dict:get(guard.REGEX_KEY) or 0 } })
        local timeouts = {}
        for _, operation in ipairs(guard.SOCKET_OPERATIONS) do
            table.insert(timeouts, { labels = { { "operation", operation } },
                                     value = dict:get(guard.TIMEOUT_KEY_PREFIX .. operation) or 0 })
        end
        family(out, "openresty_lua_cosocket_timeouts_total", "counter",
               "Cosocket operations through hardened_guard that timed out.", timeouts)
    end

    family(out, "openresty_lua_app_release_info", "gauge",
           "Release of the lua_app role that each worker loaded (value 1).", release_samples())

    local capacity, free = shared_dict_samples()
    family(out, "openresty_lua_shared_dict_capacity_bytes", "gauge",
           "Size of each lua_shared_dict.", capacity)
    family(out, "openresty_lua_shared_dict_free_bytes", "gauge",
           "Free space of each lua_shared_dict in whole pages (dict:free_space()).", free)

    local status = stub_status()
    if status then
        for _, state in ipairs({ "active", "reading", "writing", "waiting" }) do
            family(out, "openresty_connections_" .. state, "gauge",
                   "Client connections in state " .. state .. " (stub_status).",
                   { { value = status[state] } })
        end
        family(out, "openresty_connections_accepted_total", "counter", "Accepted client connections.",
               { { value = status.accepted } })
        family(out, "openresty_connections_handled_total", "counter", "Handled client connections.",
               { { value = status.handled } })
        family(out, "openresty_http_requests_total", "counter", "Client requests.",
               { { value = status.requests } })
    end
    return table.concat(out)
end

-- content_by_lua handler of the metrics location.
function _M.serve()
    -- The serving worker's own numbers are fresh, not up to one interval old.
    publish(false)
    ngx.header["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
    ngx.print(_M.render())
end

return _M
