-- hardened_worker: the init_worker_by_lua hook of hardened.openresty.server.
--
-- nginx accepts one init_worker_by_lua* in http, so the role owns it (hardened/lua.conf)
-- and every piece that needs per-worker start-up plugs in here. In each worker:
-- 1. start the metrics publisher (hardened_metrics) when the metrics endpoint is on;
-- 2. call init_worker() of every module in server_lua_init_worker_modules, in order, each
--    in pcall so that one failing hook neither stops the others nor the worker;
-- 3. when the lua_app role is deployed (its shared dict exists), load the live release's
--    hardened_release module and record which release this worker runs, with the hooks'
--    errors; or record that no release could be loaded.

local metrics = require("hardened_metrics")
local names = require("hardened_names")

local _M = {}

local function record_missing_release(dict, worker, err)
    ngx.log(ngx.ERR, "hardened_worker: no release loaded: ", err)
    dict:set(names.release_worker_key .. worker, "")
    dict:set(names.release_pid_key .. worker, ngx.worker.pid())
    dict:set(names.release_error_key .. worker, "no release loaded: " .. tostring(err))
end

function _M.init_worker(options)
    options = options or {}
    metrics.start({ interval = options.metrics_interval })

    local failures = {}
    for _, name in ipairs(options.modules or {}) do
        local ok, err = pcall(function()
            require(name).init_worker()
        end)
        if not ok then
            failures[#failures + 1] = name .. ".init_worker() failed: " .. tostring(err)
            ngx.log(ngx.ERR, "hardened_worker: ", failures[#failures])
        end
    end

    local dict, worker = ngx.shared[names.release_dict], ngx.worker.id()
    if dict and worker then
        local ok, release = pcall(require, "hardened_release")
        if not ok then
            record_missing_release(dict, worker, release)
        else
            release.init_worker(#failures > 0 and table.concat(failures, "; ") or nil)
        end
    end
end

return _M
