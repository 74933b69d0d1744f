//! Grouped bar charts as standalone SVG, for the figures in docs/BENCHMARKS.md. Written
//! by hand on purpose: a few rectangles and labels, no fonts or rendering stack needed.

use std::fmt::Write as _;
use std::path::PathBuf;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 360.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
const COLOURS: &[&str] = &["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"];

/// One bar per series in each group, e.g. groups = concurrencies, series = servers.
pub struct Bars<'a> {
    pub title: &'a str,
    pub unit: &'a str,
    pub groups: Vec<String>,
    /// (series name, one value per group)
    pub series: Vec<(String, Vec<f64>)>,
}

/// Writes `docs/bench/{name}.svg` and returns the Markdown that shows it.
pub fn write(name: &str, bars: &Bars) -> anyhow::Result<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("{name}.svg")), svg(bars))?;
    Ok(format!("![{}](bench/{name}.svg)\n", bars.title))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A "nice" axis maximum: 1, 2 or 5 times a power of ten, at or above `max`.
fn axis_max(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|v| *v >= max).unwrap_or(10.0 * magnitude)
}

fn svg(bars: &Bars) -> String {
    let max = axis_max(bars.series.iter().flat_map(|(_, v)| v.iter().copied()).fold(0.0, f64::max));
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let group_w = plot_w / bars.groups.len().max(1) as f64;
    let bar_w = group_w * 0.8 / bars.series.len().max(1) as f64;
    let y = |v: f64| TOP + plot_h * (1.0 - v / max);
    let mut s = String::new();
    let _ = writeln!(s, r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#);
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(s, r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#, WIDTH / 2.0, escape(bars.title));
    for tick in 0..=5 {
        let v = max * tick as f64 / 5.0;
        let _ = writeln!(s, r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##, WIDTH - RIGHT, LEFT - 6.0, y(v) + 4.0, format_value(v), y = y(v));
    }
    let _ = writeln!(s, r#"<text transform="translate(16 {}) rotate(-90)" text-anchor="middle">{}</text>"#, TOP + plot_h / 2.0, escape(bars.unit));
    for (g, group) in bars.groups.iter().enumerate() {
        let x0 = LEFT + g as f64 * group_w + group_w * 0.1;
        for (i, (name, values)) in bars.series.iter().enumerate() {
            let v = values.get(g).copied().unwrap_or(0.0);
            let x = x0 + i as f64 * bar_w;
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                y(v),
                bar_w * 0.92,
                TOP + plot_h - y(v),
                COLOURS[i % COLOURS.len()],
                escape(name),
                format_value(v)
            );
        }
        let _ = writeln!(s, r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#, x0 + group_w * 0.4, TOP + plot_h + 18.0, escape(group));
    }
    let _ = writeln!(s, r##"<line x1="{LEFT}" x2="{}" y1="{}" y2="{}" stroke="#333"/>"##, WIDTH - RIGHT, TOP + plot_h, TOP + plot_h);
    let mut x = LEFT;
    for (i, (name, _)) in bars.series.iter().enumerate() {
        let _ = writeln!(s, r#"<rect x="{x:.1}" y="{}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{}">{}</text>"#, HEIGHT - 22.0, COLOURS[i % COLOURS.len()], x + 16.0, HEIGHT - 12.0, escape(name));
        x += 24.0 + 7.5 * name.chars().count() as f64;
    }
    s.push_str("</svg>\n");
    s
}

fn format_value(v: f64) -> String {
    if v >= 100.0 || v == v.round() { format!("{v:.0}") } else { format!("{v:.2}") }
}
