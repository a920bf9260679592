-- Builds the greeting. Names are matched with a bounded regex (lua_regex_match_limit
-- applies) and anything else is replaced, so the response never echoes raw input.
local _M = {}

function _M.greeting(name)
    if type(name) ~= "string" or not ngx.re.find(name, [[^[A-Za-z][A-Za-z .'-]{0,39}$]], "jo") then
        name = "world"
    end
    return "Hello, " .. name .. ", from Lua behind hardened.openresty."
end

return _M
