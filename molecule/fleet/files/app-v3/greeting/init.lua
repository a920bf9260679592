local _M = {}

function _M.text()
    return "app v3"
end

-- v3 needs a backend that fleet-2 cannot reach: healthy everywhere but there, so a rolling
-- deploy must stop at fleet-2 and roll that host back.
function _M.health()
    if ngx.var.hostname == "fleet-2" then
        ngx.status = ngx.HTTP_SERVICE_UNAVAILABLE
        ngx.say("v3 cannot reach its backend from fleet-2")
        return
    end
    ngx.say("ok")
end

return _M
