local _M = {}

function _M.text()
    return "app v2"
end

function _M.health()
    ngx.say("ok")
end

return _M
