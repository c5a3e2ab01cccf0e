//! LuaSocket's behaviour for the calls heka's inputs and outputs make, over loopback.

use crate::plugin::PluginKind;

fn run(code: &str) {
    let lua = crate::sandbox::modules::lua_with(super::open, PluginKind::Input, "socket");
    if let Err(e) = lua.load(code).set_name("=t").exec() {
        panic!("{e}");
    }
}

#[test]
fn a_tcp_server_reads_lines_as_heka_tcp_input_does() {
    run(r##"
        local server = assert(socket.bind("127.0.0.1", 0))
        server:settimeout(0)
        local _, port = server:getsockname()
        assert(port > 0)
        local ready, _, err = socket.select({server}, nil, 0)
        assert(#ready == 0 and err == "timeout", "nothing yet")
        local client = assert(socket.connect("127.0.0.1", port))
        assert(client:send("first line\r\nsecond ") == 19)
        ready = socket.select({server}, nil, 1)
        assert(ready[1] == server and ready[server], "the server is readable")
        local conn = assert(server:accept())
        conn:settimeout(0)
        assert(conn:getpeername() == "127.0.0.1")
        local line, e, partial
        for _ = 1, 100 do
            line, e, partial = conn:receive("*l")
            if line then break end
            socket.sleep(0.01)
        end
        assert(line == "first line", tostring(line))
        line, e, partial = conn:receive("*l")
        assert(line == nil and e == "timeout" and partial == "second ", "a partial line")
        client:send("part\n")
        socket.sleep(0.05)
        line = conn:receive("*l")
        assert(line == "part", "what follows a partial")
        client:close()
        socket.sleep(0.05)
        line, e = conn:receive("*l")
        assert(line == nil and e == "closed", tostring(e))
        conn:close()
        server:close()
    "##);
}

#[test]
fn udp_datagrams_and_their_senders() {
    run(r##"
        local server = assert(socket.udp())
        assert(server:setsockname("127.0.0.1", 0))
        server:settimeout(1)
        local _, port = server:getsockname()
        local sender = assert(socket.udp())
        assert(sender:sendto("<13>hello", "127.0.0.1", port) == 9)
        local data, ip, from = server:receivefrom()
        assert(data == "<13>hello" and ip == "127.0.0.1" and from > 0)
        server:settimeout(0)
        local none, err = server:receivefrom()
        assert(none == nil and err == "timeout")
        assert(type(socket.gettime()) == "number" and socket.gettime() > 1.6e9)
    "##);
}

#[test]
fn a_plugin_cannot_hold_every_descriptor() {
    run(r##"
        local held = {}
        local ok, err
        for i = 1, 300 do
            local s, e = socket.udp()
            if not s then ok, err = false, e break end
            held[i] = s
        end
        assert(ok == false and err:find("too many sockets"), tostring(err))
        held[1]:close()
        assert(socket.udp(), "a closed socket gives its place back")
        local nope, e = socket.connect("127.0.0.1", 1)
        assert(nope == nil and type(e) == "string", "errors are returned, not raised")
    "##);
}
