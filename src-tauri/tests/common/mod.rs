//! Helpers shared by the desktop app's integration tests (`mod common;`).

/// A free port outside 40000-41100, the passive ranges these tests give the server (a
/// listen port inside its own passive range is refused).
pub(crate) fn free_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !(40000..=41100).contains(&port) {
            return port;
        }
    }
}
