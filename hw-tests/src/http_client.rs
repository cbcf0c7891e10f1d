//! A deliberately small HTTP/1.1 client: one request per connection (`Connection: close`),
//! over plain TCP or any other stream (the TLS test's). What the tests post is a few
//! headers and a JSON body, so this is all they need, and every byte is in plain sight.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a connect, a write or a read may take before the exchange counts as failed.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// One request.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: std::io::Error },
    #[error("the exchange with {addr} failed: {source}")]
    Exchange { addr: SocketAddr, source: std::io::Error },
    #[error("malformed answer from {addr}: {what}")]
    Malformed { addr: SocketAddr, what: &'static str },
}

impl HttpError {
    /// The peer could not be reached or went away mid-request (as when it was killed or
    /// lost power), as opposed to answering something unexpected.
    pub fn is_transport(&self) -> bool {
        matches!(self, HttpError::Connect { .. } | HttpError::Exchange { .. })
    }
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Sends `request` to `addr` over a fresh TCP connection and reads the whole answer.
pub fn send(addr: SocketAddr, request: &Request<'_>) -> Result<Response, HttpError> {
    let mut stream =
        TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|source| HttpError::Connect { addr, source })?;
    let exchange = |source| HttpError::Exchange { addr, source };
    stream.set_read_timeout(Some(TIMEOUT)).map_err(exchange)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(exchange)?;
    let raw = exchange_on(&mut stream, &addr.to_string(), request).map_err(exchange)?;
    let response = parse(&raw).map_err(|what| match raw.windows(4).any(|w| w == b"\r\n\r\n") {
        true => HttpError::Malformed { addr, what },
        // The peer closed before a whole head: it went away (killed, power lost).
        false => exchange(cut_short()),
    })?;
    let declared = response.header("content-length").and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| response.body.len() < n) {
        return Err(exchange(cut_short()));
    }
    Ok(response)
}

fn cut_short() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the connection closed before a whole answer")
}

/// Writes `request` on `stream` and reads until the peer closes. A peer that closes a
/// TLS stream without close_notify after a complete answer is not an error.
pub fn exchange_on<S: Read + Write>(stream: &mut S, host: &str, request: &Request<'_>) -> std::io::Result<Vec<u8>> {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        request.method,
        request.path,
        request.body.len()
    );
    for (name, value) in request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(request.body)?;
    stream.flush()?;
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => Ok(raw),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => Ok(raw),
        Err(e) => Err(e),
    }
}

/// Parses a whole HTTP/1.1 answer (status line, headers, body up to the close).
pub fn parse(raw: &[u8]) -> Result<Response, &'static str> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .filter(|l| l.starts_with("HTTP/1."))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("no status line")?;
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    Ok(Response { status, headers, body: raw[split + 4..].to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_answer_and_refuses_garbage() {
        let r = parse(b"HTTP/1.1 201 Created\r\nLocation: /x\r\ncontent-type: application/json\r\n\r\n{\"id\":\"A\"}")
            .unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.header("location"), Some("/x"));
        assert_eq!(r.json().unwrap()["id"], "A");
        assert!(parse(b"garbage").is_err());
        assert!(parse(b"SSH-2.0 nope\r\n\r\n").is_err());
    }

    #[test]
    fn an_answer_cut_short_is_a_transport_error() {
        for answer in
            [&b""[..], b"HTTP/1.1 201 Created\r\nContent-Le", b"HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\n{}"]
        {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = std::thread::spawn(move || {
                let (mut socket, _) = listener.accept().unwrap();
                let mut head = [0u8; 1024];
                let _ = socket.read(&mut head).unwrap();
                socket.write_all(answer).unwrap();
            });
            let err = send(addr, &Request { method: "GET", path: "/", headers: &[], body: b"" }).unwrap_err();
            assert!(err.is_transport(), "{err}");
            server.join().unwrap();
        }
    }

    #[test]
    fn a_closed_port_is_a_transport_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = send(addr, &Request { method: "GET", path: "/health", headers: &[], body: b"" }).unwrap_err();
        assert!(err.is_transport(), "{err}");
    }
}
