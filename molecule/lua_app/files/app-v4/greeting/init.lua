local _M = {}

function _M.text()
    return "app v4"
end

-- Compiles and lints cleanly, but is not healthy: the deploy must be rolled back.
function _M.health()
    ngx.status = ngx.HTTP_SERVICE_UNAVAILABLE
    ngx.say("v4 cannot reach its backend")
end

return _M
