-- Stands in for the module the lua_app role writes into every release: the server role's
-- init_worker hook loads it and it records the release each worker runs.
local names = require("hardened_names")

local _M = { id = "molecule-probe" }

function _M.init_worker(err)
    local dict, worker = ngx.shared[names.release_dict], ngx.worker.id()
    if not dict or not worker then
        return
    end
    dict:set(names.release_worker_key .. worker, _M.id)
    dict:set(names.release_pid_key .. worker, ngx.worker.pid())
    dict:set(names.release_error_key .. worker, err or "")
end

return _M
