-- Test module of the default scenario: an approved module in the sealed module root, and
-- an init_worker hook (listed in server_lua_init_worker_modules).
local _M = {}

-- Held for the life of the worker, so that the memory shows in the metrics.
local held = {}

function _M.hello()
    return "approved module loaded"
end

function _M.init_worker()
    local worker = ngx.worker.id()
    if worker then
        ngx.shared.molecule_probe:set("init_worker:" .. worker, ngx.worker.pid())
    end
end

-- Keeps `mib` MiB of distinct strings alive in this worker's Lua VM; returns the worker id.
function _M.allocate(mib)
    for _ = 1, mib do
        held[#held + 1] = string.rep("x", 1024 * 1024 - 16) .. string.format("%16d", #held)
    end
    return ngx.worker.id()
end

return _M
