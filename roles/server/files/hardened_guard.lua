-- hardened_guard: drop-in wrappers for ngx.re and cosockets that count what the
-- hardening stops, so that it shows on the metrics endpoint (hardened_metrics):
--   regex match-limit hits (lua_regex_match_limit)  openresty_lua_regex_match_limit_hits_total
--   cosocket timeouts (lua_socket_*_timeout)         openresty_lua_cosocket_timeouts_total
-- Installed by hardened.openresty.server. Return values are exactly those of the wrapped
-- calls; the counting is a side effect. Without the metrics dict nothing is counted.
--
--   local guard = require("hardened_guard")
--   local m, err = guard.re_match(subject, [[^(\w+)=(.*)$]], "jo")
--   local sock = guard.tcp()
--   local ok, err = sock:connect("127.0.0.1", 6379)
--   local line, err = sock:receive("*l")
--   guard.note_socket_error("receive", err)  -- for sockets other libraries own

local names = require("hardened_names")

local _M = {}

-- Shared with hardened_metrics, which renders the counters.
_M.DICT = names.metrics_dict
_M.REGEX_KEY = "count:regex_match_limit_hits"
_M.TIMEOUT_KEY_PREFIX = "count:cosocket_timeouts:"
_M.SOCKET_OPERATIONS = { "connect", "sslhandshake", "send", "receive" }

local re = ngx.re

local function count(key)
    local dict = ngx.shared[_M.DICT]
    if dict then
        dict:incr(key, 1, 0)
    end
end

-- ngx.re reports a hit of lua_regex_match_limit as "pcre_exec() failed: -8" with PCRE1
-- and "pcre_exec() failed: -47" with PCRE2.
local MATCH_LIMIT_CODES = { ["-8"] = true, ["-47"] = true }

function _M.is_match_limit_error(err)
    if type(err) ~= "string" then
        return false
    end
    local code = err:match("^pcre_exec%(%) failed: (%-%d+)$")
    return code ~= nil and MATCH_LIMIT_CODES[code] == true
end

local function note_regex(err)
    if err and _M.is_match_limit_error(err) then
        count(_M.REGEX_KEY)
    end
end

function _M.re_match(subject, regex, options, ctx, res_table)
    local captures, err = re.match(subject, regex, options, ctx, res_table)
    note_regex(err)
    return captures, err
end

function _M.re_find(subject, regex, options, ctx, nth)
    local from, to, err = re.find(subject, regex, options, ctx, nth)
    note_regex(err)
    return from, to, err
end

function _M.re_sub(subject, regex, replace, options)
    local new, n, err = re.sub(subject, regex, replace, options)
    note_regex(err)
    return new, n, err
end

function _M.re_gsub(subject, regex, replace, options)
    local new, n, err = re.gsub(subject, regex, replace, options)
    note_regex(err)
    return new, n, err
end

-- Counts err when it is a cosocket timeout; operation is one of SOCKET_OPERATIONS.
function _M.note_socket_error(operation, err)
    if err == "timeout" then
        count(_M.TIMEOUT_KEY_PREFIX .. operation)
    end
end

local function counted(operation, result, err, ...)
    _M.note_socket_error(operation, err)
    return result, err, ...
end

-- A cosocket whose connect, sslhandshake, send and receive calls count timeouts.
local Socket = {}
Socket.__index = Socket

for _, operation in ipairs({ "connect", "sslhandshake", "send", "receive" }) do
    Socket[operation] = function(self, ...)
        local sock = self.sock
        return counted(operation, sock[operation](sock, ...))
    end
end

function Socket:receiveany(...)
    local sock = self.sock
    return counted("receive", sock:receiveany(...))
end

for _, name in ipairs({ "settimeout", "settimeouts", "setkeepalive", "close",
                        "getreusedtimes", "setoption" }) do
    Socket[name] = function(self, ...)
        local sock = self.sock
        return sock[name](sock, ...)
    end
end

function Socket:receiveuntil(pattern, options)
    local iterator, err = self.sock:receiveuntil(pattern, options)
    if not iterator then
        return nil, err
    end
    return function(size)
        return counted("receive", iterator(size))
    end
end

-- Like ngx.socket.tcp(); the raw socket stays reachable as .sock.
function _M.tcp()
    local sock, err = ngx.socket.tcp()
    if not sock then
        return nil, err
    end
    return setmetatable({ sock = sock }, Socket)
end

return _M
