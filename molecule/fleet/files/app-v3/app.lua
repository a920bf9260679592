-- Fleet scenario application, release v3 (v1 and v2 are the lua_app scenario's): / greets, /health answers ok.
local greeting = require("greeting")
local release = require("hardened_release")

local _M = {}

function _M.handle()
    if ngx.var.uri == "/health" then
        return greeting.health()
    end
    ngx.say(greeting.text(), " (release ", release.id, ", worker ", ngx.worker.pid(), ")")
end

return _M
