//! The logs through their real path: rings, the writer thread, a sink that
//! the test reads instead of stderr.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use tracing_subscriber::fmt::MakeWriter;

use super::*;
use crate::config::{AccessLogFormat, AccessLogTarget};

/// A sink the test can read: what the writer thread wrote.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn started(ring_bytes: usize) -> (Logging, Capture) {
    let capture = Capture::default();
    let logging = Logging::start(Box::new(capture.clone()), ring_bytes).unwrap();
    (logging, capture)
}

/// Logs `line` as the fmt layer does: one `write_all` from this thread.
fn log_line(logging: &Logging, line: &str) {
    let lines = ThreadLines {
        hub: logging.hub.clone(),
    };
    lines.make_writer().write_all(line.as_bytes()).unwrap();
}

#[test]
fn a_line_bigger_than_the_ring_is_dropped_and_counted_never_torn() {
    let (logging, capture) = started(4096);
    log_line(&logging, "before\n");
    log_line(&logging, &format!("{}\n", "x".repeat(5000)));
    log_line(&logging, "after\n");
    logging.flush();
    assert_eq!(capture.text(), "before\nafter\n");
    assert_eq!(logging.lines_dropped(), 1);
}

#[test]
fn many_threads_logging_at_once_write_only_whole_lines() {
    const THREADS: usize = 8;
    const LINES: usize = 5_000;
    // Small rings: some lines are dropped, and none may be torn.
    let (logging, capture) = started(4096);
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let logging = logging.clone();
            std::thread::spawn(move || {
                for n in 0..LINES {
                    log_line(&logging, &format!("thread {t} line {n} {}\n", "y".repeat(n % 97)));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    logging.flush();
    let text = capture.text();
    let mut written = 0;
    let mut last = [None::<usize>; THREADS];
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 5, "torn line {line:?}");
        let (t, n): (usize, usize) = (fields[1].parse().unwrap(), fields[3].parse().unwrap());
        assert_eq!(fields[4], "y".repeat(n % 97), "torn line {line:?}");
        // A thread's lines keep their order.
        assert!(last[t].is_none_or(|previous| previous < n), "{line:?} out of order");
        last[t] = Some(n);
        written += 1;
    }
    assert_eq!(written + logging.lines_dropped() as usize, THREADS * LINES);
}

#[test]
fn flush_writes_every_line_logged_before_it() {
    let (logging, capture) = started(1 << 20);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let logging = logging.clone();
            std::thread::spawn(move || {
                for n in 0..100 {
                    log_line(&logging, &format!("{t}:{n}\n"));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    for n in 0..100 {
        log_line(&logging, &format!("main:{n}\n"));
    }
    // At once, not after the writer's next tick.
    logging.flush();
    assert_eq!(capture.text().lines().count(), 500);
    assert_eq!(logging.lines_dropped(), 0);
}

#[test]
fn lines_are_written_without_a_flush_within_the_drain_interval() {
    let (logging, capture) = started(1 << 20);
    log_line(&logging, "soon\n");
    let deadline = std::time::Instant::now() + writer::DRAIN_INTERVAL * 20;
    while capture.text().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(capture.text(), "soon\n");
}

#[test]
fn json_lines_carry_the_event_fields_at_the_top_level() {
    let (logging, capture) = started(1 << 20);
    let dispatch = logging.dispatch(LogFormat::Json, EnvFilter::new("info"), false);
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info!(target: "guest", route = "GET /hello", "guest: hi \"there\"");
        tracing::debug!("filtered out");
    });
    logging.flush();
    let text = capture.text();
    assert_eq!(text.lines().count(), 1, "{text}");
    let line: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
    assert_eq!(line["route"], "GET /hello");
    assert_eq!(line["message"], "guest: hi \"there\"");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["target"], "guest");
}

#[test]
fn text_lines_are_tracings_usual_format() {
    let (logging, capture) = started(1 << 20);
    let dispatch = logging.dispatch(LogFormat::Text, EnvFilter::new("info"), false);
    tracing::dispatcher::with_default(&dispatch, || tracing::info!(shard = 0, "shard started"));
    logging.flush();
    let text = capture.text();
    assert!(
        text.contains(" INFO ") && text.ends_with("shard started shard=0\n"),
        "{text}"
    );
}

fn entry(status: u16) -> AccessEntry<'static> {
    AccessEntry {
        time: UNIX_EPOCH + Duration::from_secs(971_186_136),
        client: None,
        method: b"GET",
        target: b"/",
        version: "HTTP/1.1",
        status,
        bytes: 10,
        duration: Duration::from_millis(1),
        route: None,
        shard: 0,
        fuel: None,
        instance: None,
    }
}

#[test]
fn no_access_logger_without_an_access_log() {
    let (logging, _) = started(4096);
    assert!(logging.access_logger().is_none());
}

#[test]
fn access_lines_go_to_their_own_sink_and_a_full_ring_drops_them() {
    let (logging, server_log) = started(4096);
    let access = Capture::default();
    let sink = AccessSink::to(Box::new(access.clone()));
    logging.hub.attach_access(sink, AccessLogFormat::Common, 4096).unwrap();
    let mut logger = logging.access_logger().unwrap();
    // About 70 bytes a line: a 4 KiB ring holds fewer than 100.
    for _ in 0..100 {
        logger.log(&entry(200));
    }
    logging.flush();
    let written = access.text().lines().count();
    assert!(written < 100, "{written}");
    assert_eq!(written as u64 + logging.access_lines_dropped(), 100);
    assert_eq!(logging.lines_dropped(), 0);
    assert_eq!(server_log.text(), "");
    assert!(
        access
            .text()
            .starts_with("- - - [10/Oct/2000:13:55:36 +0000] \"GET / HTTP/1.1\" 200 10\n")
    );
}

#[test]
fn the_access_log_file_is_appended_to_and_reopened_after_rotation() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    std::fs::write(&path, "earlier\n").unwrap();
    let (logging, _) = started(4096);
    let config = AccessLogConfig {
        target: AccessLogTarget::File(path.clone()),
        format: AccessLogFormat::Json,
        buffer_bytes: 1 << 20,
    };
    logging.open_access_log(&config).unwrap();
    assert!(logging.open_access_log(&config).is_err(), "only one access log");
    let mut logger = logging.access_logger().unwrap();
    logger.log(&entry(200));
    logging.flush();
    let before = std::fs::read_to_string(&path).unwrap();
    assert!(
        before.starts_with("earlier\n{\"time\":") && before.contains("\"status\":200"),
        "{before}"
    );

    // logrotate: move the file away, then ask for a reopen.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    logging.reopen_access_log();
    logging.flush();
    logger.log(&entry(404));
    logging.flush();
    let after = std::fs::read_to_string(&path).unwrap();
    assert_eq!(after.lines().count(), 1, "{after}");
    assert!(after.contains("\"status\":404"), "{after}");
    assert_eq!(std::fs::read_to_string(&rotated).unwrap(), before);
    // Created without access for others (the umask may take more).
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o137, 0, "{mode:o}");
}

#[test]
fn log_formats_are_named_text_and_json() {
    assert_eq!("text".parse(), Ok(LogFormat::Text));
    assert_eq!("json".parse(), Ok(LogFormat::Json));
    assert!("yaml".parse::<LogFormat>().is_err());
}
