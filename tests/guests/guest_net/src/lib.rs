//! Version 9: reaches for the network (so it imports wasi:sockets, as every Python component
//! does): TCP, UDP and a name lookup. The host links sockets with every capability refused, so
//! each attempt fails; any that succeeds reports a leak.

use std::net::{TcpStream, ToSocketAddrs, UdpSocket};

use hsm_guest::{Db, Error, Result};

fn up(_db: &Db) -> Result<()> {
    let mut refusals = Vec::new();
    match TcpStream::connect("127.0.0.1:9") {
        Ok(_) => return Err(Error::msg("LEAK: tcp connected")),
        Err(e) => refusals.push(format!("tcp: {e}")),
    }
    match UdpSocket::bind("127.0.0.1:0") {
        Ok(socket) => match socket.send_to(b"x", "127.0.0.1:9") {
            Ok(_) => return Err(Error::msg("LEAK: udp sent")),
            Err(e) => refusals.push(format!("udp: {e}")),
        },
        Err(e) => refusals.push(format!("udp: {e}")),
    }
    match ("localhost", 80)
        .to_socket_addrs()
        .map(|addrs| addrs.count())
    {
        Ok(0) => refusals.push("lookup: no address".into()),
        Ok(_) => return Err(Error::msg("LEAK: name lookup answered")),
        Err(e) => refusals.push(format!("lookup: {e}")),
    }
    Err(Error::msg(format!("blocked: {}", refusals.join("; "))))
}

hsm_guest::migration! {
    version: 9,
    name: "net",
    description: "Test guest: reaches for the network",
    up: up,
}
