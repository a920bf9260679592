local _M = {}

-- A syntax error: the deploy must be refused before anything live changes.
function _M.text()
    return "app v3" ..
end

function _M.health()
    ngx.say("ok")
end

return _M
