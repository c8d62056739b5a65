//! Version 9: tries to open a network connection, so it imports wasi:sockets. The host must
//! refuse to load it.

use hsm_guest::{Db, Error, Result};

fn up(_db: &Db) -> Result<()> {
    match std::net::TcpStream::connect("127.0.0.1:9") {
        Ok(_) => Err(Error::msg("LEAK: connected")),
        Err(e) => Err(Error::msg(format!("blocked: {e}"))),
    }
}

hsm_guest::migration! {
    version: 9,
    name: "net",
    description: "Test guest: reaches for the network",
    up: up,
}
