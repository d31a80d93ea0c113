//! The optional `[access_log]` table: where and how each response is
//! logged.

use super::defaults::*;
use super::{AccessLogConfig, AccessLogFormat, AccessLogTarget, ConfigError, Ctx, Settings, raw};

pub(super) fn access_log_config(
    ctx: &Ctx<'_>,
    raw: Option<&raw::RawAccessLog>,
) -> Result<Option<AccessLogConfig>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let s = Settings::new(ctx, "access_log".into());
    let target = match raw.path.get_ref().as_str() {
        "-" => AccessLogTarget::Stdout,
        _ => AccessLogTarget::File(s.path(&raw.path, "path")?),
    };
    let format = match &raw.format {
        None => AccessLogFormat::Common,
        Some(format) => match format.get_ref().as_str() {
            "common" => AccessLogFormat::Common,
            "json" => AccessLogFormat::Json,
            other => {
                return Err(s.error(
                    format,
                    "format",
                    format!("{other:?} is not an access log format: use \"common\" or \"json\""),
                ));
            }
        },
    };
    // Per shard.
    #[rustfmt::skip]
    let buffer_bytes = s.size(&raw.buffer_bytes, "buffer_bytes", DEFAULT_ACCESS_LOG_BUFFER_BYTES, 4 << 10, 256 << 20)?;
    Ok(Some(AccessLogConfig {
        target,
        format,
        buffer_bytes,
    }))
}
