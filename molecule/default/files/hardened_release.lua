-- Stands in for the module the lua_app role writes into every release: the server role's
-- init_worker hook loads it and it records the release each worker runs.
local _M = { id = "molecule-probe" }

function _M.init_worker(err)
    local dict, worker = ngx.shared.hardened_openresty_release, ngx.worker.id()
    if not dict or not worker then
        return
    end
    dict:set("worker:" .. worker, _M.id)
    dict:set("pid:" .. worker, ngx.worker.pid())
    dict:set("error:" .. worker, err or "")
end

return _M
