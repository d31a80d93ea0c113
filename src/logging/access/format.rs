//! An [`AccessEntry`] as one line: the Common Log Format, which existing
//! tools parse, or one JSON object.

use std::borrow::Cow;
use std::io::Write;
use std::net::IpAddr;

use serde::{Serialize, Serializer};

use super::AccessEntry;
use super::clock::Stamp;

/// `%h %l %u %t "%r" %>s %b`:
/// `127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET /x HTTP/1.1" 200 2326`.
/// The request line is escaped so that no byte a client sends can end the
/// line or the quoted field early.
pub fn common(line: &mut Vec<u8>, entry: &AccessEntry<'_>, stamp: &Stamp<'_>) {
    match client_ip(entry) {
        Some(ip) => {
            // Writing to a Vec cannot fail.
            let _ = write!(line, "{ip}");
        }
        None => line.push(b'-'),
    }
    line.extend_from_slice(b" - - ");
    line.extend_from_slice(stamp.clf.as_bytes());
    line.extend_from_slice(b" \"");
    escape_into(line, entry.method);
    line.push(b' ');
    escape_into(line, entry.target);
    line.push(b' ');
    escape_into(line, entry.version.as_bytes());
    line.extend_from_slice(b"\" ");
    line.extend_from_slice(itoa::Buffer::new().format(entry.status).as_bytes());
    line.push(b' ');
    match entry.bytes {
        0 => line.push(b'-'),
        bytes => line.extend_from_slice(itoa::Buffer::new().format(bytes).as_bytes()),
    }
    line.push(b'\n');
}

/// One object with every key, `null` where a value is absent.
pub fn json(line: &mut Vec<u8>, entry: &AccessEntry<'_>, stamp: &Stamp<'_>) {
    let object = JsonLine {
        time: JsonTime(stamp),
        client: client_ip(entry),
        method: String::from_utf8_lossy(entry.method),
        path: String::from_utf8_lossy(entry.target),
        status: entry.status,
        bytes: entry.bytes,
        duration_ms: entry.duration.as_micros() as f64 / 1000.0,
        route: entry.route,
        shard: entry.shard,
        fuel: entry.fuel,
        instance: entry.instance,
    };
    // Serializing plain values into a Vec cannot fail; if it ever did, the
    // line is left out rather than written half.
    let start = line.len();
    match serde_json::to_writer(&mut *line, &object) {
        Ok(()) => line.push(b'\n'),
        Err(_) => line.truncate(start),
    }
}

#[derive(Serialize)]
struct JsonLine<'a> {
    time: JsonTime<'a>,
    client: Option<IpAddr>,
    method: Cow<'a, str>,
    path: Cow<'a, str>,
    status: u16,
    bytes: u64,
    duration_ms: f64,
    route: Option<&'a str>,
    shard: usize,
    fuel: Option<u64>,
    instance: Option<&'a str>,
}

/// RFC 3339 in UTC with milliseconds: `2000-10-10T13:55:36.123Z`.
struct JsonTime<'a>(&'a Stamp<'a>);

impl Serialize for JsonTime<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{}.{:03}Z", self.0.rfc3339_seconds, self.0.millis))
    }
}

/// The client's address without its port; an IPv4 client of an IPv6
/// socket as plain IPv4.
fn client_ip(entry: &AccessEntry<'_>) -> Option<IpAddr> {
    entry.client.map(|addr| addr.ip().to_canonical())
}

/// Printable ASCII as is; `"`, `\`, control and non-ASCII bytes as `\xHH`.
fn escape_into(line: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let plain = |b: u8| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\';
    if bytes.iter().all(|&b| plain(b)) {
        line.extend_from_slice(bytes);
        return;
    }
    for &b in bytes {
        if plain(b) {
            line.push(b);
        } else {
            line.extend_from_slice(&[b'\\', b'x', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::super::clock::Clock;
    use super::*;

    fn entry() -> AccessEntry<'static> {
        AccessEntry {
            time: UNIX_EPOCH + Duration::from_millis(971_186_136_042),
            client: Some("127.0.0.1:51234".parse().unwrap()),
            method: b"GET",
            target: b"/apache_pb.gif?x=1",
            version: "HTTP/1.1",
            status: 200,
            bytes: 2326,
            duration: Duration::from_micros(1_250),
            route: Some("GET /apache_pb.gif"),
            shard: 1,
            fuel: Some(12_345),
            instance: Some("fresh"),
        }
    }

    fn formatted(entry: &AccessEntry<'_>, format: fn(&mut Vec<u8>, &AccessEntry<'_>, &Stamp<'_>)) -> String {
        let mut clock = Clock::default();
        let mut line = Vec::new();
        format(&mut line, entry, &clock.stamp(entry.time));
        String::from_utf8(line).unwrap()
    }

    #[test]
    fn common_log_format_exactly() {
        assert_eq!(
            formatted(&entry(), common),
            "127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] \"GET /apache_pb.gif?x=1 HTTP/1.1\" 200 2326\n"
        );
        let unknown = AccessEntry {
            client: None,
            bytes: 0,
            status: 404,
            ..entry()
        };
        assert_eq!(
            formatted(&unknown, common),
            "- - - [10/Oct/2000:13:55:36 +0000] \"GET /apache_pb.gif?x=1 HTTP/1.1\" 404 -\n"
        );
    }

    #[test]
    fn common_log_format_escapes_what_could_break_the_line() {
        let hostile = AccessEntry {
            client: Some("[::ffff:10.0.0.1]:80".parse().unwrap()),
            target: b"/a\"b\\c\r\nd\x7f\xc3\xa9",
            ..entry()
        };
        assert_eq!(
            formatted(&hostile, common),
            "10.0.0.1 - - [10/Oct/2000:13:55:36 +0000] \"GET /a\\x22b\\x5cc\\x0d\\x0ad\\x7f\\xc3\\xa9 HTTP/1.1\" 200 2326\n"
        );
    }

    #[test]
    fn json_has_every_key() {
        let line = formatted(&entry(), json);
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1, "{line}");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "time": "2000-10-10T13:55:36.042Z",
                "client": "127.0.0.1",
                "method": "GET",
                "path": "/apache_pb.gif?x=1",
                "status": 200,
                "bytes": 2326,
                "duration_ms": 1.25,
                "route": "GET /apache_pb.gif",
                "shard": 1,
                "fuel": 12345,
                "instance": "fresh",
            })
        );
    }

    #[test]
    fn json_absent_values_are_null_and_strings_escaped() {
        let unrouted = AccessEntry {
            client: None,
            target: b"/\"quoted\"\n\xff",
            route: None,
            fuel: None,
            instance: None,
            ..entry()
        };
        let line = formatted(&unrouted, json);
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        for key in ["client", "route", "fuel", "instance"] {
            assert!(value[key].is_null(), "{key}: {line}");
        }
        assert_eq!(value["path"], "/\"quoted\"\n\u{fffd}");
    }
}
