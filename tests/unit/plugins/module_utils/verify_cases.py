# -*- coding: utf-8 -*-
"""Configuration cases shared by the rule tests and the crossplane differential test.

Each case: id, files (name relative to the configuration directory -> text; "nginx.conf"
is the main file), expect (rule id -> number of findings from the configuration rules;
every rule not listed must stay silent), and optionally policy and prefix.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

HARDENED_HTTP = [
    ("lua_package_path", '"/srv/lua/lib/?.lua;/srv/lua/app/?.lua;/usr/share/lua/5.1/?.lua"'),
    ("lua_package_cpath", '"/srv/lua/lib/?.so"'),
    ("lua_socket_connect_timeout", "2s"),
    ("lua_socket_send_timeout", "5s"),
    ("lua_socket_read_timeout", "5s"),
    ("lua_regex_match_limit", "100000"),
    ("lua_ssl_trusted_certificate", "/etc/ssl/certs/ca-certificates.crt"),
    ("lua_ssl_verify_depth", "3"),
    ("lua_ssl_protocols", "TLSv1.2 TLSv1.3"),
]
OK_CONTENT = 'content_by_lua_block { ngx.say("ok") }'


def conf(top="user www-data;", http="", server="", location=OK_CONTENT, drop=(), replace=None):
    """A hardened configuration with pieces added, dropped or replaced."""
    replace = replace or {}
    lines = [top, "events {", "    worker_connections 64;", "}", "http {"]
    for name, value in HARDENED_HTTP:
        if name in drop:
            continue
        lines.append("    %s %s;" % (name, replace.get(name, value)))
    if http:
        lines.append(http)
    lines += [
        "    server {",
        "        listen 8080;",
        server,
        "        location / {",
        "            " + location,
        "        }",
        "    }",
        "}",
        "",
    ]
    return "\n".join(lines)


def case(case_id, expect=None, files=None, policy=None, prefix=None, **conf_args):
    return {
        "id": case_id,
        "files": files if files is not None else {"nginx.conf": conf(**conf_args)},
        "expect": expect or {},
        "policy": policy,
        "prefix": prefix,
    }


PLAIN_NGINX = """\
user www-data;
events { worker_connections 64; }
http {
    server { listen 8080; location / { return 200 "plain"; } }
}
"""

RULE_CASES = [
    # Baselines.
    case("hardened-baseline"),
    case("plain-nginx-without-lua", files={"nginx.conf": PLAIN_NGINX}),
    case("debian-module-loaded-but-unused", {
        "lua-package-path-missing": 1, "lua-package-cpath-missing": 1,
        "lua-socket-timeout-missing": 3, "lua-regex-match-limit-missing": 1,
        "lua-ssl-trusted-certificate-missing": 1, "lua-ssl-protocols-legacy": 1, "lua-ssl-verify-depth-too-low": 1,
    }, files={"nginx.conf": "load_module modules/ngx_http_lua_module.so;\n" + PLAIN_NGINX}),
    # lua-package-path-missing / lua-package-cpath-missing
    case("package-path-missing", {"lua-package-path-missing": 1}, drop=("lua_package_path",)),
    case("package-cpath-missing", {"lua-package-cpath-missing": 1}, drop=("lua_package_cpath",)),
    case("package-path-only-in-server", {"lua-package-path-missing": 1}, drop=("lua_package_path",),
         server='        lua_package_path "/srv/lua/lib/?.lua";'),
    case("package-path-from-include-at-http-level", files={
        "nginx.conf": conf(drop=("lua_package_path",), http="    include conf.d/*.conf;"),
        "conf.d/lua.conf": 'lua_package_path "/srv/lua/lib/?.lua;/usr/share/lua/5.1/?.lua";\n',
    }),
    # lua-package-path-relative / lua-package-cpath-relative
    case("package-path-relative-entry", {"lua-package-path-relative": 1},
         replace={"lua_package_path": '"lua/?.lua;/srv/lua/lib/?.lua"'}),
    case("package-path-dot-entry", {"lua-package-path-relative": 1},
         replace={"lua_package_path": '"./?.lua;/srv/lua/lib/?.lua"'}),
    case("package-path-prefix-entries-are-absolute",
         replace={"lua_package_path": '"$prefix/lua/?.lua;${prefix}lib/?.lua;/usr/share/lua/5.1/?.lua"'}),
    case("package-cpath-relative-entry", {"lua-package-cpath-relative": 1},
         replace={"lua_package_cpath": '"./?.so;/srv/lua/lib/?.so"'}),
    # lua-package-path-default-fallback / lua-package-cpath-default-fallback
    case("package-path-trailing-double-semicolon", {"lua-package-path-default-fallback": 1},
         replace={"lua_package_path": '"/srv/lua/lib/?.lua;;"'}),
    case("package-path-double-semicolon-in-the-middle", {"lua-package-path-default-fallback": 1},
         replace={"lua_package_path": '"/srv/lua/lib/?.lua;;/srv/lua/app/?.lua"'}),
    case("package-cpath-only-default", {"lua-package-cpath-default-fallback": 1},
         replace={"lua_package_cpath": '";;"'}),
    case("package-path-single-trailing-semicolon-is-fine",
         replace={"lua_package_path": '"/srv/lua/lib/?.lua;"'}),
    # lua-code-cache-off
    case("code-cache-off-in-http", {"lua-code-cache-off": 1}, http="    lua_code_cache off;"),
    case("code-cache-off-in-location-if", {"lua-code-cache-off": 1},
         server="        location /dev { if ($arg_debug) { lua_code_cache off; } }"),
    case("code-cache-off-in-included-file", {"lua-code-cache-off": 1}, files={
        "nginx.conf": conf(server="        include snippets/dev.conf;"),
        "snippets/dev.conf": "# enabled for debugging\nlua_code_cache off;\n",
    }),
    case("code-cache-on", http="    lua_code_cache on;"),
    # ngx_conf_set_flag_slot: case-insensitive, a C string
    case("code-cache-off-upper-case", {"lua-code-cache-off": 1}, http="    lua_code_cache OFF;"),
    case("code-cache-off-before-nul", {"lua-code-cache-off": 1}, http='    lua_code_cache "off\x00x";'),
    case("code-cache-on-upper-case", http="    lua_code_cache ON;"),
    # data blocks: their lines are never directives
    case("code-cache-off-as-map-data", http="    map $uri $x {\n        lua_code_cache off;\n    }"),
    case("code-cache-off-as-geo-data", http="    geo $y {\n        default 0;\n        lua_code_cache off;\n    }"),
    case("code-cache-off-after-a-map", {"lua-code-cache-off": 1},
         http="    map $uri $x {\n        default 0;\n    }\n    lua_code_cache off;"),
    case("code-cache-off-commented-out", http="    # lua_code_cache off;"),
    # lua-file-variable-path
    case("lua-file-with-uri-variable", {"lua-file-variable-path": 1},
         location="content_by_lua_file /srv/lua/app/$uri.lua;"),
    case("set-by-lua-file-with-arg-variable", {"lua-file-variable-path": 1},
         location="set_by_lua_file $x /srv/lua/app/$arg_f.lua; return 200 $x;"),
    case("lua-file-with-braced-variable", {"lua-file-variable-path": 1},
         location="access_by_lua_file /srv/lua/app/${host}.lua; " + OK_CONTENT),
    # lua-file-relative-path / lua-file-outside-module-roots
    case("lua-file-relative", {"lua-file-relative-path": 1},
         location="content_by_lua_file lua/handler.lua;"),
    case("lua-file-outside-roots", {"lua-file-outside-module-roots": 1},
         location="content_by_lua_file /tmp/handler.lua;"),
    case("lua-file-inside-roots", location="content_by_lua_file /srv/lua/app/handler.lua;"),
    case("lua-file-under-prefix-root", prefix="/usr/local/openresty/nginx",
         replace={"lua_package_path": '"$prefix/lua/?.lua;/usr/share/lua/5.1/?.lua"'},
         location="content_by_lua_file /usr/local/openresty/nginx/lua/handler.lua;"),
    case("lua-file-in-sibling-with-common-prefix", {"lua-file-outside-module-roots": 1},
         location="content_by_lua_file /srv/lua/application/handler.lua;"),
    # a module root is the part of an entry before its first "?": require() cannot load
    # /srv/lua/app/handler.lua through /srv/lua/app/mod_?.lua
    case("lua-file-beside-a-partial-name-root", {"lua-file-outside-module-roots": 1},
         replace={"lua_package_path": '"/srv/lua/app/mod_?.lua;/usr/share/lua/5.1/?.lua"'},
         location="content_by_lua_file /srv/lua/app/handler.lua;"),
    case("lua-file-root-from-partial-name",
         replace={"lua_package_path": '"/srv/lua/app/mod_?.lua;/usr/share/lua/5.1/?.lua"'},
         location="content_by_lua_file /srv/lua/app/mod_handler.lua;"),
    # an entry without "?" names one file, not its directory
    case("lua-file-beside-a-one-file-entry", {"lua-file-outside-module-roots": 1},
         replace={"lua_package_path": '"/srv/lua/app/init.lua;/usr/share/lua/5.1/?.lua"'},
         location="content_by_lua_file /srv/lua/app/handler.lua;"),
    case("lua-file-is-a-one-file-entry",
         replace={"lua_package_path": '"/srv/lua/app/init.lua;/usr/share/lua/5.1/?.lua"'},
         location="content_by_lua_file /srv/lua/app/init.lua;"),
    # lua_package_cpath directories hold C modules, not approved Lua code
    case("lua-file-in-a-cpath-directory", {"lua-file-outside-module-roots": 1},
         replace={"lua_package_cpath": '"/srv/lua/clib/?.so"'},
         location="content_by_lua_file /srv/lua/clib/handler.lua;"),
    # the path is opened as a C string: it ends at a NUL byte
    case("lua-file-path-cut-at-nul", {"lua-file-outside-module-roots": 1},
         location='content_by_lua_file "/tmp/h.lua\x00/srv/lua/app/h.lua";'),
    # nginx-user-root
    case("user-root", {"nginx-user-root": 1}, top="user root;"),
    case("user-root-with-group", {"nginx-user-root": 1}, top="user root root;"),
    case("user-unprivileged", top="user nobody nogroup;"),
    # getpwnam() reads a C string: "root\0x" is root
    case("user-root-before-nul", {"nginx-user-root": 1}, top='user "root\x00x";'),
    case("user-rootless", top="user rootless;"),
    # lua-socket-timeout-missing / lua-socket-timeout-too-long
    case("socket-timeouts-all-missing", {"lua-socket-timeout-missing": 3},
         drop=("lua_socket_connect_timeout", "lua_socket_send_timeout", "lua_socket_read_timeout")),
    case("socket-read-timeout-only-in-server", {"lua-socket-timeout-missing": 1},
         drop=("lua_socket_read_timeout",), server="        lua_socket_read_timeout 5s;"),
    case("socket-connect-timeout-above-max", {"lua-socket-timeout-too-long": 1},
         replace={"lua_socket_connect_timeout": "6s"}),
    case("socket-timeouts-equal-to-max",
         replace={"lua_socket_connect_timeout": "5s", "lua_socket_send_timeout": "10s",
                  "lua_socket_read_timeout": "10000ms"}),
    case("socket-read-timeout-too-long-in-location", {"lua-socket-timeout-too-long": 1},
         location="lua_socket_read_timeout 1m; " + OK_CONTENT),
    case("socket-connect-timeout-one-ms-over", {"lua-socket-timeout-too-long": 1},
         replace={"lua_socket_connect_timeout": "5001ms"}),
    case("socket-timeout-invalid-value", {"lua-socket-timeout-too-long": 1},
         replace={"lua_socket_send_timeout": "5x"}),
    case("socket-timeout-policy-allows-more", policy={"socket_read_timeout_max": "1m30s"},
         replace={"lua_socket_read_timeout": "90"}),
    # lua-regex-match-limit-missing / lua-regex-match-limit-too-high
    case("regex-match-limit-missing", {"lua-regex-match-limit-missing": 1},
         drop=("lua_regex_match_limit",)),
    case("regex-match-limit-double-zero", {"lua-regex-match-limit-missing": 1},
         replace={"lua_regex_match_limit": "00"}),
    case("regex-match-limit-zero", {"lua-regex-match-limit-missing": 1},
         replace={"lua_regex_match_limit": "0"}),
    case("regex-match-limit-above-max", {"lua-regex-match-limit-too-high": 1},
         replace={"lua_regex_match_limit": "100001"}),
    case("regex-match-limit-policy-lower", {"lua-regex-match-limit-too-high": 1},
         policy={"regex_match_limit_max": 5000}),
    # lua-socket-keepalive-timeout-too-long / lua-regex-cache-too-large
    # 0 means pooled connections are never closed
    case("keepalive-timeout-zero", {"lua-socket-keepalive-timeout-too-long": 1},
         http="    lua_socket_keepalive_timeout 0;"),
    case("keepalive-timeout-zero-ms", {"lua-socket-keepalive-timeout-too-long": 1},
         http="    lua_socket_keepalive_timeout 0ms;"),
    case("keepalive-timeout-one-ms", http="    lua_socket_keepalive_timeout 1ms;"),
    # ngx_parse_time in milliseconds: a trailing bare number is seconds, "5 5" is 10 s
    case("connect-timeout-trailing-number", {"lua-socket-timeout-too-long": 1},
         replace={"lua_socket_connect_timeout": "500ms9"}),
    case("connect-timeout-trailing-number-within", replace={"lua_socket_connect_timeout": "500ms4"}),
    case("connect-timeout-space-separated", {"lua-socket-timeout-too-long": 1},
         replace={"lua_socket_connect_timeout": '"5 5"'}),
    case("connect-timeout-space-separated-within", replace={"lua_socket_connect_timeout": '"2 2"'}),
    case("connect-timeout-years-invalid-in-ms", {"lua-socket-timeout-too-long": 1},
         replace={"lua_socket_connect_timeout": "1y"}),
    # lua_package_path "" is skipped by lua-nginx-module: the defaults apply
    case("package-path-empty", {"lua-package-path-missing": 1}, replace={"lua_package_path": '""'}),
    # a raw byte 0x01 is replaced by the default path, like ";;"
    case("package-path-default-byte", {"lua-package-path-default-fallback": 1},
         replace={"lua_package_path": '"/srv/lua/lib/?.lua;\x01;/usr/share/lua/5.1/?.lua"'}),
    # a line shaped like nginx -T's file marker inside a file
    case("dump-marker-comment-in-a-file", {"nginx-dump-ambiguous": 1, "lua-code-cache-off": 1},
         http="# configuration file /etc/nginx/other.conf:\n    lua_code_cache off;"),
    case("dump-marker-comment-indented", http="    # configuration file /etc/nginx/other.conf:"),
    case("keepalive-timeout-above-max", {"lua-socket-keepalive-timeout-too-long": 1},
         http="    lua_socket_keepalive_timeout 121s;"),
    case("keepalive-timeout-equal-to-max", http="    lua_socket_keepalive_timeout 2m;"),
    case("regex-cache-above-max", {"lua-regex-cache-too-large": 1},
         http="    lua_regex_cache_max_entries 1025;"),
    case("regex-cache-equal-to-max", http="    lua_regex_cache_max_entries 1024;"),
    # lua-dangerous-call
    case("dangerous-os-execute", {"lua-dangerous-call": 1},
         location='content_by_lua_block { os.execute("id") ngx.say("done") }'),
    case("dangerous-names-only-in-comments-and-strings", location="""content_by_lua_block {
                -- os.execute("id")
                --[==[ io.popen("ls") ]==]
                local a = "loadstring('x')"
                local b = [[ debug.traceback() ]]
                ngx.say(a, b)
            }"""),
    case("dangerous-name-in-nginx-comment",
         server='        # location /x { content_by_lua_block { os.execute("id") } }'),
    case("dangerous-debug-library", {"lua-dangerous-call": 1},
         location="content_by_lua_block { local info = debug.getinfo(1) ngx.say(info.source) }"),
    case("debug-as-a-local-flag-is-fine",
         location="content_by_lua_block { local debug = ngx.var.arg_debug if debug then ngx.say(1) end }"),
    case("dangerous-in-by-lua-string", {"lua-dangerous-call": 1},
         location="content_by_lua 'local f = io.popen(\"ls\") ngx.say(f:read(\"*a\"))';"),
    case("dangerous-in-set-by-lua-block", {"lua-dangerous-call": 1},
         location='set_by_lua_block $x { return loadstring("return 1")() } return 200 $x;'),
    case("dangerous-require-os", {"lua-dangerous-call": 1},
         location='content_by_lua_block { local o = require("os") ngx.say(o.time()) }'),
    case("dangerous-names-as-fields-are-fine", location="""content_by_lua_block {
                local cjson = require "cjson"
                local M = {}
                function M.load(x) return cjson.decode(x) end
                local t = { load = M.load }
                ngx.say(t.load("[]"), M:load("{}"))
            }"""),
    case("prelude-removing-globals-is-fine",
         http="    init_by_lua_block { os.execute = nil io.popen = nil _G.loadstring = nil }"),
    case("dangerous-custom-policy", {"lua-dangerous-call": 1}, policy={"dangerous_calls": ["ngx.exit"]},
         location='content_by_lua_block { os.execute("id") ngx.exit(403) }'),
    case("dangerous-two-uses-in-one-block", {"lua-dangerous-call": 2},
         location='content_by_lua_block { local f = io.popen("ls") os.remove("/x") }'),
    # Parsing corners: Lua long strings with braces (crossplane cannot parse these).
    case("long-string-with-braces-and-dangerous-call", {"lua-dangerous-call": 1},
         location="""content_by_lua_block {
                local tpl = [[ { "not": "the end" } } ]]
                os.execute("id")
            }"""),
    case("long-comment-with-brace", location="""content_by_lua_block {
                --[[ a comment over two lines
                     with a stray } ]]
                ngx.say("ok")
            }"""),
    # Other contexts.
    case("stream-package-path-relative", {"lua-package-path-relative": 1},
         top='user www-data;\nstream { lua_package_path "./?.lua;/srv/lua/lib/?.lua"; }'),
    case("include-glob-without-match", http="    include conf.d/*.conf;"),
]

# Cosocket TLS (lua_rules_tls) and the other doors code comes through (lua_rules_code_loading):
# each rule with a positive case and a safe look-alike.
RULE_CASES += [
    # lua-ssl-trusted-certificate-missing
    case("ssl-trusted-certificate-missing", {"lua-ssl-trusted-certificate-missing": 1},
         drop=("lua_ssl_trusted_certificate",)),
    case("ssl-trusted-certificate-only-in-a-location", {"lua-ssl-trusted-certificate-missing": 1},
         drop=("lua_ssl_trusted_certificate",),
         location="lua_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt; " + OK_CONTENT),
    case("ssl-trusted-certificate-missing-without-lua", files={"nginx.conf": PLAIN_NGINX}),
    # lua-ssl-protocols-legacy
    case("ssl-protocols-missing", {"lua-ssl-protocols-legacy": 1}, drop=("lua_ssl_protocols",)),
    case("ssl-protocols-tlsv1-1", {"lua-ssl-protocols-legacy": 1},
         replace={"lua_ssl_protocols": "TLSv1.1 TLSv1.2"}),
    case("ssl-protocols-sslv3-in-a-server", {"lua-ssl-protocols-legacy": 1},
         server="        lua_ssl_protocols SSLv3 TLSv1.2;"),
    case("ssl-protocols-tlsv1-3-only", replace={"lua_ssl_protocols": "TLSv1.3"}),
    # lua-ssl-verify-depth-too-low
    case("ssl-verify-depth-missing", {"lua-ssl-verify-depth-too-low": 1}, drop=("lua_ssl_verify_depth",)),
    case("ssl-verify-depth-1", {"lua-ssl-verify-depth-too-low": 1}, replace={"lua_ssl_verify_depth": "1"}),
    case("ssl-verify-depth-2", replace={"lua_ssl_verify_depth": "2"}),
    # lua-tls-verify-off
    case("tls-handshake-verify-false", {"lua-tls-verify-off": 1}, location="""content_by_lua_block {
                local sock = ngx.socket.tcp()
                sock:connect("127.0.0.1", 8443)
                local session, err = sock:sslhandshake(nil, "backend.internal", false)
            }"""),
    case("tls-handshake-verify-omitted", {"lua-tls-verify-off": 1},
         location='content_by_lua_block { local s = ngx.socket.tcp() s:sslhandshake(nil, "b.internal") }'),
    case("tls-resty-http-ssl-verify-false", {"lua-tls-verify-off": 1}, location="""content_by_lua_block {
                local httpc = require("resty.http").new()
                local res = httpc:request_uri("https://api.internal/", { ssl_verify = false })
            }"""),
    case("tls-verify-true-and-look-alikes", location="""content_by_lua_block {
                local sock = ngx.socket.tcp()
                local ok = sock:sslhandshake(nil, "backend.internal", true)
                local ok2 = sock:sslhandshake(nil, "backend.internal", opts.verify ~= false)
                local safe = { ssl_verify = true }
                if opts.ssl_verify == false then return end
                -- sock:sslhandshake(nil, "x", false)  in a comment
                ngx.say("ssl_verify = false is only a string here")
            }"""),
    # nginx-load-module-outside-module-dir
    case("load-module-from-tmp", {"nginx-load-module-outside-module-dir": 1},
         top="load_module /tmp/ngx_evil_module.so;\nuser www-data;"),
    case("load-module-dot-dot", {"nginx-load-module-outside-module-dir": 1},
         top="load_module /usr/lib/nginx/modules/../../../../tmp/evil.so;\nuser www-data;"),
    case("load-module-relative-dot-dot-through-modules", {"nginx-load-module-outside-module-dir": 1},
         prefix="/usr/share/nginx/", top="load_module modules/link/../evil.so;\nuser www-data;"),
    case("load-module-relative-outside-prefix-modules", {"nginx-load-module-outside-module-dir": 1},
         prefix="/usr/share/nginx/", top="load_module lib/evil.so;\nuser www-data;"),
    case("load-module-debian-relative-and-absolute", prefix="/usr/share/nginx/",
         top="load_module modules/ngx_http_lua_module.so;\n"
             "load_module /usr/lib/nginx/modules/ndk_http_module.so;\nuser www-data;"),
    # nginx-ssl-engine
    case("ssl-engine", {"nginx-ssl-engine": 1}, top="ssl_engine pkcs11;\nuser www-data;"),
    case("ssl-engine-look-alike-ssl-ciphers", http="    ssl_ciphers HIGH:!aNULL;"),
    # nginx-perl-code
    case("perl-modules-and-require", {"nginx-perl-code": 2},
         http="    perl_modules /srv/perl;\n    perl_require Hello.pm;"),
    case("perl-set-inline", {"nginx-perl-code": 1},
         http="    perl_set $upper 'sub { return uc $_[0]->uri; }';"),
    # nginx-njs-code
    case("njs-import", {"nginx-njs-code": 2}, http="    js_path /etc/nginx/njs;\n    js_import main.js;"),
    case("njs-look-alike-lua-variable", http="    lua_shared_dict js_import_cache 1m;"),
]


# Configurations that exercise the lexer; all of them parse (crossplane may not).
PARSER_CONFIGS = {
    "quotes-and-escapes": r"""
events {}
http {
    log_format main '$remote_addr "$request" \'q\'';
    server {
        set $a "x y";
        set $b 'it"s';
        set $c "tab\there";
        return 200 "a\"b";
    }
}
""",
    "variables-in-braces": """
http { map $http_x ${var_name} { default 1; } server { set $x ${host}path; } }
""",
    "comments-everywhere": """
# leading comment
events { # after brace
    worker_connections 10; # trailing
}
http { server { listen 80 # inside a statement
    ; } }
""",
    "hash-inside-a-word": """
http { server { location / { return 200 a#b; } } }
""",
    "set-by-lua-block": """
http { server { location / {
    set_by_lua_block $res { local t = {1, {2}} return #t }
    return 200 $res;
} } }
""",
    "lua-strings-with-braces": r"""
http { server { location / {
    content_by_lua_block {
        local a = "}"
        local b = '{'
        local c = "\"}"
        local d = '\'{'
        local e = "back\\"
        ngx.say(a, b, c, d, e) -- } closing in comment
    }
} } }
""",
    "if-with-parentheses": """
http { server { location / { if ($request_method = POST) { return 405; } } } }
""",
}
