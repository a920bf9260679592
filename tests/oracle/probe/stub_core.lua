-- Oracle only (installed in a throwaway container as resty/core.lua, which
-- lua-nginx-module loads when it creates a Lua VM, before any configured code runs):
-- load the real resty.core, then replace the dangerous functions of
-- lua_tokens.DEFAULT_DANGEROUS_CALLS with stubs that log every call, with the chunk name
-- of the Lua code that made it, to /run/oracle-calls.log. Stubs that would change the
-- host (os.execute, os.remove, os.rename, os.exit, io.popen) return nil instead of
-- running; the others run the original after logging, so that the code goes on.
local core = require "resty.oracle_real_core"

local open, getinfo, format, sub = io.open, debug.getinfo, string.format, string.sub
local pairs, type = pairs, type

local function record(name)
    local source, line = "(tail)", 0
    for level = 3, 12 do
        local info = getinfo(level, "Sl")
        if not info then
            break
        end
        if info.what ~= "C" and info.source ~= "=(tail call)" then
            source, line = info.source, info.currentline
            break
        end
    end
    local handle = open("/run/oracle-calls.log", "a")
    if handle then
        handle:write(format("%s\t%s\t%d\n", name, (source:gsub("[\t\n]", " ")), line or 0))
        handle:close()
    end
end

local function stub(tbl, key, name, run_original)
    local original = tbl[key]
    if type(original) ~= "function" then
        return
    end
    tbl[key] = function(...)
        record(name)
        if run_original then
            return original(...)
        end
        return nil
    end
end

stub(os, "execute", "os.execute", false)
stub(os, "remove", "os.remove", false)
stub(os, "rename", "os.rename", false)
stub(os, "exit", "os.exit", false)
stub(io, "popen", "io.popen", false)
stub(_G, "loadstring", "loadstring", true)
stub(_G, "load", "load", true)
stub(_G, "dofile", "dofile", true)
stub(_G, "loadfile", "loadfile", true)
stub(_G, "setfenv", "setfenv", true)
stub(package, "loadlib", "package.loadlib", true)
stub(string, "dump", "string.dump", true)
local names = {}
for key in pairs(debug) do
    names[#names + 1] = key
end
for _, key in pairs(names) do
    stub(debug, key, "debug." .. key, true)
end

return core
