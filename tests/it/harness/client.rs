//! A raw HTTP/1.1 client over a real TCP connection. Every response it
//! reads is checked strictly (status line, header syntax, exactly one
//! Content-Length or else `Transfer-Encoding: chunked` with well-formed
//! chunks, Date and Server present), so every test also checks that the
//! server never writes a malformed response.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Trailer fields of a chunked response.
    pub trailers: Vec<(String, String)>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        Client::from_stream(stream)
    }

    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Sends a request with a Host header (and Content-Length when there is
    /// a body) and reads its response.
    pub fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        self.send(&format_request(method, path, headers, body));
        if method == "HEAD" {
            self.read_head_response()
        } else {
            self.read_response()
        }
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    pub fn post(&mut self, path: &str, body: &[u8]) -> Response {
        self.request("POST", path, &[], body)
    }

    pub fn read_response(&mut self) -> Response {
        self.try_read_response(false).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn read_head_response(&mut self) -> Response {
        self.try_read_response(true).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Reads one response; `Err` on EOF, timeout or a malformed response.
    pub fn try_read_response(&mut self, head_only: bool) -> Result<Response, String> {
        let (response, head_len) = loop {
            if let Some(parsed) = parse_head(&self.buf)? {
                break parsed;
            }
            self.fill()?;
        };
        self.buf.drain(..head_len);
        let mut response = response;
        if (100..200).contains(&response.status) {
            return Ok(response);
        }
        let lengths: Vec<&str> = response
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.as_str())
            .collect();
        let no_body_status = response.status == 204 || response.status == 304;
        let codings = response.headers_named("transfer-encoding");
        if codings > 0 {
            if codings > 1 || !lengths.is_empty() || no_body_status {
                return Err("Transfer-Encoding with Content-Length, twice, or on a bodiless status".into());
            }
            if !response
                .header("transfer-encoding")
                .unwrap()
                .eq_ignore_ascii_case("chunked")
            {
                return Err("Transfer-Encoding other than chunked".into());
            }
            if !head_only {
                self.read_chunked(&mut response)?;
            }
            return Ok(response);
        }
        let length = match (no_body_status, lengths.as_slice()) {
            (true, []) => 0,
            (true, _) => return Err(format!("{} response with Content-Length", response.status)),
            (false, [one]) if !one.is_empty() && one.bytes().all(|b| b.is_ascii_digit()) => {
                one.parse::<usize>().unwrap()
            }
            (false, other) => {
                return Err(format!(
                    "response must carry exactly one valid Content-Length, got {other:?}"
                ));
            }
        };
        if head_only {
            return Ok(response);
        }
        while self.buf.len() < length {
            self.fill()?;
        }
        response.body = self.buf.drain(..length).collect();
        Ok(response)
    }

    /// A chunked body, strictly: hex sizes, CRLF after each chunk, then
    /// trailer lines and the empty line.
    fn read_chunked(&mut self, response: &mut Response) -> Result<(), String> {
        loop {
            let line = self.read_line()?;
            let size = usize::from_str_radix(&line, 16).map_err(|_| format!("bad chunk size line {line:?}"))?;
            if size == 0 {
                loop {
                    let trailer = self.read_line()?;
                    if trailer.is_empty() {
                        return Ok(());
                    }
                    let (name, value) = trailer.split_once(": ").ok_or(format!("bad trailer {trailer:?}"))?;
                    response.trailers.push((name.to_string(), value.to_string()));
                }
            }
            while self.buf.len() < size + 2 {
                self.fill()?;
            }
            if &self.buf[size..size + 2] != b"\r\n" {
                return Err("chunk data not followed by CRLF".into());
            }
            response.body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
        }
    }

    fn read_line(&mut self) -> Result<String, String> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8(self.buf.drain(..end).collect()).map_err(|_| "non-UTF-8 line")?;
                self.buf.drain(..2);
                return Ok(line);
            }
            self.fill()?;
        }
    }

    fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 64 << 10];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err("connection closed by the server".into()),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) => Err(format!("read failed: {e}")),
        }
    }

    /// True if the server closes the connection (EOF, or reset) within the
    /// read timeout, with no further bytes.
    pub fn is_closed_by_server(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(e.kind(), std::io::ErrorKind::ConnectionReset),
        }
    }
}

pub fn format_request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n").into_bytes();
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    let chunked = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"));
    if !chunked && (!body.is_empty() || method == "POST" || method == "PUT") {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// Parses and checks a response head; `None` if incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<(Response, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            return Err(format!(
                "malformed response head ({e}): {:?}",
                String::from_utf8_lossy(&buf[..buf.len().min(300)])
            ));
        }
    };
    // httparse accepts bare LF; a correct server never sends one.
    let head = &buf[..head_len];
    if head
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'))
    {
        return Err("response head uses a bare LF".into());
    }
    if parsed.version != Some(1) {
        return Err(format!("response version is not HTTP/1.1: {:?}", parsed.version));
    }
    let status = parsed.code.ok_or("no status code")?;
    if !(100..=999).contains(&status) {
        return Err(format!("invalid status {status}"));
    }
    let mut response = Response {
        status,
        reason: parsed.reason.unwrap_or("").to_string(),
        headers: Vec::new(),
        body: Vec::new(),
        trailers: Vec::new(),
    };
    for h in parsed.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| format!("non-UTF-8 value for {}", h.name))?;
        response.headers.push((h.name.to_string(), value.to_string()));
    }
    if status >= 200 {
        for required in ["date", "server"] {
            if response.headers_named(required) != 1 {
                return Err(format!(
                    "response needs exactly one {required} header: {:?}",
                    response.headers
                ));
            }
        }
        if response.headers_named("connection") > 1 {
            return Err("response has more than one Connection header".into());
        }
    }
    Ok(Some((response, head_len)))
}
