-- Sample application for hardened.openresty.lua_app (lua_app_entry_module: app).
-- Deploy it with:  lua_app_src: "{{ playbook_dir }}/../examples/lua_app"
--   GET /        a greeting that names the release and the worker that served it
--   GET /health  200 "ok" (lua_app_health_path)
local hello = require("hello")
local release = require("hardened_release")

local _M = {}

function _M.handle()
    local uri = ngx.var.uri
    if uri == "/health" then
        ngx.say("ok")
        return
    end
    if uri ~= "/" then
        return ngx.exit(ngx.HTTP_NOT_FOUND)
    end
    ngx.say(hello.greeting(ngx.var.arg_name), " Release ", release.id, ", worker ", ngx.worker.pid(), ".")
end

return _M
