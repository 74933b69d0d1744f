//! `nukisashi:platform/log`: module log lines into the host's tracing pipeline, inside the
//! request's span (which carries municipality, module, version and request id), and into
//! the module's own redacted log for its vendor (`telemetry::module_logs`).

use super::PlatformState;
use super::wit::log::{Host, Level};

/// Longest log line kept; longer ones are cut.
const MAX_LINE_BYTES: usize = 4096;

impl Host for PlatformState {
    async fn log(&mut self, level: Level, message: String) {
        // Past `[limits] log_lines` or `log_bytes` further lines are dropped.
        if self.log_lines_left == 0 || self.log_bytes_left == 0 {
            self.governor.refused("log-lines");
            return;
        }
        self.log_lines_left -= 1;
        let mut message = message;
        if message.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        self.log_bytes_left = self.log_bytes_left.saturating_sub(message.len());
        // And over time, per (municipality, module): `log_bytes_per_second`.
        if !self.governor.logs.take_n(self.municipality.lg_code.as_str(), &self.module.id, message.len() as f64) {
            self.governor.refused("log-rate");
            return;
        }
        let module = self.module.id.as_str();
        let source = crate::telemetry::module_logs::Source {
            module,
            version: &self.module.version,
            lg_code: self.municipality.lg_code.as_str(),
            request_id: &self.request_id,
        };
        self.module_logs.log(source, level_name(level), &message);
        match level {
            Level::Trace => tracing::trace!(target: "module", module, "{message}"),
            Level::Debug => tracing::debug!(target: "module", module, "{message}"),
            Level::Info => tracing::info!(target: "module", module, "{message}"),
            Level::Warn => tracing::warn!(target: "module", module, "{message}"),
            Level::Error => tracing::error!(target: "module", module, "{message}"),
        }
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}
