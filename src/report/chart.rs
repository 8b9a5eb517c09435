//! Charts for the HTML report, drawn by plotters' SVG backend into strings
//! (inline SVG: no scripts, fonts or files). A chart with no data points is
//! not drawn; the page says why instead.

use plotters::prelude::*;
use std::ops::Range;

pub const BLUE: RGBColor = RGBColor(31, 119, 180);
pub const ORANGE: RGBColor = RGBColor(255, 127, 14);
pub const GREEN: RGBColor = RGBColor(44, 160, 44);
pub const RED: RGBColor = RGBColor(214, 39, 40);
pub const PURPLE: RGBColor = RGBColor(148, 103, 189);
pub const GREY: RGBColor = RGBColor(120, 120, 120);

const SIZE: (u32, u32) = (860, 320);

/// One plotted series.
pub struct Line {
    pub label: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
    /// Draw a dot at each point (sparse data).
    pub dots: bool,
}

/// A horizontal reference: a line (`to` = None) or a shaded band.
pub struct Level {
    pub label: String,
    pub color: RGBColor,
    pub from: f64,
    pub to: Option<f64>,
}

/// A marked point: a stage that passed (green), failed (red) or could not
/// be judged (grey, `None`).
pub struct Marker {
    pub x: f64,
    pub y: f64,
    pub passed: Option<bool>,
}

/// A line chart over time (or over speakers).
#[derive(Default)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub lines: Vec<Line>,
    pub levels: Vec<Level>,
    pub markers: Vec<Marker>,
}

impl Chart {
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Chart {
        Chart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            ..Chart::default()
        }
    }

    pub fn line(mut self, label: &str, color: RGBColor, points: Vec<(f64, f64)>) -> Chart {
        let dots = points.len() < 40;
        self.lines.push(Line {
            label: label.into(),
            color,
            points,
            dots,
        });
        self
    }

    pub fn level(mut self, label: &str, color: RGBColor, from: f64, to: Option<f64>) -> Chart {
        self.levels.push(Level {
            label: label.into(),
            color,
            from,
            to,
        });
        self
    }

    /// Data points drawn (lines and markers; reference levels excluded).
    pub fn points(&self) -> usize {
        self.lines.iter().map(|l| l.points.len()).sum::<usize>() + self.markers.len()
    }

    fn ranges(&self) -> (Range<f64>, Range<f64>) {
        let xs = self.lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
        let xs = xs.chain(self.markers.iter().map(|m| m.x));
        let (x0, x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
        let ys = self.lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
        let ys = ys.chain(self.markers.iter().map(|m| m.y));
        let ys = ys.chain(self.levels.iter().map(|l| l.to.unwrap_or(l.from)));
        let y1 = ys.fold(0.0f64, f64::max);
        let pad = ((x1 - x0) * 0.03).max(0.5);
        // Headroom above the data for the legend (top left).
        (x0 - pad..x1 + pad, 0.0..(y1 * 1.4).max(1.0))
    }

    /// The chart as an SVG element, or None when it has no data points.
    pub fn svg(&self) -> Option<String> {
        if self.points() == 0 {
            return None;
        }
        let mut out = String::new();
        self.draw(&mut out).ok()?;
        Some(inline(out))
    }

    fn draw(&self, out: &mut String) -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = SVGBackend::with_string(out, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let (xr, yr) = self.ranges();
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(xr.clone(), yr)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        for l in &self.levels {
            let color = l.color;
            let series = match l.to {
                Some(to) => chart.draw_series(std::iter::once(Rectangle::new(
                    [(xr.start, l.from), (xr.end, to)],
                    color.mix(0.12).filled(),
                )))?,
                None => chart.draw_series(std::iter::once(PathElement::new(
                    vec![(xr.start, l.from), (xr.end, l.from)],
                    color.stroke_width(2),
                )))?,
            };
            series
                .label(&l.label)
                .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 16, y + 4)], color.mix(0.5).filled()));
        }
        for l in &self.lines {
            let color = l.color;
            chart
                .draw_series(LineSeries::new(l.points.iter().copied(), color.stroke_width(2)))?
                .label(&l.label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
            if l.dots {
                chart.draw_series(l.points.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
            }
        }
        chart.draw_series(self.markers.iter().map(|m| {
            let c = match m.passed {
                Some(true) => GREEN,
                Some(false) => RED,
                None => GREY,
            };
            Circle::new((m.x, m.y), 6, c.filled())
        }))?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(GREY)
            .draw()?;
        root.present()?;
        Ok(())
    }
}

/// Bars: (from, to, count) per bucket.
pub fn bars(title: &str, x_label: &str, buckets: &[(f64, f64, u64)]) -> Option<String> {
    if buckets.is_empty() {
        return None;
    }
    let mut out = String::new();
    draw_bars(&mut out, title, x_label, buckets).ok()?;
    Some(inline(out))
}

fn draw_bars<'a>(
    out: &'a mut String,
    title: &str,
    x_label: &str,
    buckets: &[(f64, f64, u64)],
) -> Result<(), Box<dyn std::error::Error + 'a>> {
    let root = SVGBackend::with_string(out, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let x0 = buckets.first().map_or(0.0, |b| b.0);
    let x1 = buckets.last().map_or(1.0, |b| b.1).max(x0 + 1e-3);
    let top = buckets.iter().map(|b| b.2).max().unwrap_or(1) as f64 * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc("turns")
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    chart.draw_series(
        buckets
            .iter()
            .map(|&(a, b, n)| Rectangle::new([(a, 0.0), (b, n as f64)], BLUE.mix(0.8).filled())),
    )?;
    root.present()?;
    Ok(())
}

/// Drops the XML declaration and namespace (HTML5 inline SVG needs neither,
/// and the page must not name any http(s) address).
fn inline(svg: String) -> String {
    let svg = match svg.find("<svg") {
        Some(i) => svg[i..].to_string(),
        None => svg,
    };
    svg.replace(" xmlns=\"http://www.w3.org/2000/svg\"", "")
        .replace(" xmlns:xlink=\"http://www.w3.org/1999/xlink\"", "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_with_points_draws_them_and_names_no_address() {
        let c = Chart::new("p95", "s", "ms").line("first audio", BLUE, vec![(1.0, 900.0), (2.0, 950.0)]);
        let svg = c.svg().unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        assert!(svg.contains("<circle") && svg.contains("<polyline"), "{svg}");
        assert!(!svg.contains("http"), "{svg}");
        assert_eq!(c.points(), 2);
    }

    #[test]
    fn a_chart_without_points_is_not_drawn() {
        let c = Chart::new("p95", "s", "ms").level("limit", RED, 2000.0, None);
        assert!(c.svg().is_none());
        assert!(bars("h", "ms", &[]).is_none());
    }
}
