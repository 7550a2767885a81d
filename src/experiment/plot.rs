//! Charts against crop size (plotters): `accuracy_vs_crop.svg`/`.png` (test accuracy, one line
//! per method with +-1 std error bars, the random encoder dashed) and the label check's figure.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::experiment::canvas::save_rgb_png;
use crate::experiment::results::SweepResults;
use crate::experiment::stats::mean_std;
use crate::io::write_atomically;

const SIZE: (u32, u32) = (720, 480);
/// DejaVu Sans (Bitstream Vera licence, assets/DejaVuSans-LICENSE): plotters draws text with
/// the fonts it is given, and a fresh machine may have none.
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";
/// One colour per method, in the sweep's method order.
const COLORS: [RGBColor; 5] = [
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
];

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and known to parse; a failure would show as missing text.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// One line of a chart: its legend and its points (x, y, lower and upper end of the bar).
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// A chart of lines with error bars against crop size, and an optional dashed reference level.
pub struct Chart {
    pub title: String,
    pub y_desc: String,
    pub lines: Vec<Line>,
    pub reference: Option<(String, f64)>,
    /// Where the legend goes: where the lines are not.
    pub legend: SeriesLabelPosition,
}

/// The points of each crop size that has runs of `method`: mean +- 1 std over seeds.
fn series(r: &SweepResults, method: &str) -> Vec<(f64, f64, f64, f64)> {
    r.sweep
        .crops
        .iter()
        .filter_map(|&c| {
            mean_std(&r.accuracies(method, Some(c))).map(|(m, s)| (c, m, m - s, m + s))
        })
        .collect()
}

/// The sweep's figure: accuracy against crop size per method, the random encoder dashed.
fn sweep_chart(r: &SweepResults) -> Chart {
    Chart {
        title: format!(
            "{} preset{}: linear-eval accuracy vs crop size",
            r.sweep.preset.name(),
            if r.sweep.smoke_scale {
                " (smoke scale)"
            } else {
                ""
            }
        ),
        y_desc: "test accuracy (%)".into(),
        lines: r
            .sweep
            .methods
            .iter()
            .map(|m| Line {
                name: m.name().to_uppercase(),
                points: series(r, m.name()),
            })
            .collect(),
        reference: mean_std(&r.accuracies("random", None))
            .map(|(m, _)| ("random encoder".into(), m)),
        legend: SeriesLabelPosition::UpperRight,
    }
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    c: &Chart,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let values: Vec<f64> = c
        .lines
        .iter()
        .flat_map(|l| l.points.iter().flat_map(|&(_, _, lo, hi)| [lo, hi]))
        .chain(c.reference.as_ref().map(|(_, y)| *y))
        .filter(|v| v.is_finite())
        .collect();
    let lo = values.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() {
        (lo - 1.0, hi + 1.0)
    } else {
        (0.0, 100.0)
    };
    let xs = c.lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
    let x_lo = xs.clone().fold(0.1f64, |a, x| a.min(x - 0.1));
    let x_hi = xs.fold(0.9f64, |a, x| a.max(x + 0.1));
    let mut chart = ChartBuilder::on(&root)
        .caption(&c.title, (FAMILY, 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(x_lo..x_hi, lo..hi)?;
    chart
        .configure_mesh()
        .x_desc("crop size p (fraction of the image area)")
        .y_desc(&c.y_desc)
        .label_style((FAMILY, 14))
        .draw()?;
    for (i, line) in c.lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()].to_rgba();
        chart
            .draw_series(LineSeries::new(
                line.points.iter().map(|&(x, y, _, _)| (x, y)),
                color.stroke_width(2),
            ))?
            .label(line.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(
            line.points
                .iter()
                .map(|&(x, y, lo, hi)| ErrorBar::new_vertical(x, lo, y, hi, color.filled(), 8)),
        )?;
        chart.draw_series(
            line.points
                .iter()
                .map(|&(x, y, _, _)| Circle::new((x, y), 4, color.filled())),
        )?;
    }
    if let Some((label, y)) = &c.reference {
        let grey = RGBColor(110, 110, 110);
        chart
            .draw_series(DashedLineSeries::new(
                [(x_lo, *y), (x_hi, *y)],
                6,
                4,
                grey.stroke_width(2),
            ))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    }
    chart
        .configure_series_labels()
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(c.legend.clone())
        .draw()?;
    root.present()
}

fn failed(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.to_path_buf(),
        detail: format!("cannot draw the plot: {e}"),
    }
}

/// Writes the sweep's figure as SVG and PNG, each through a temporary file.
pub fn write_plots(r: &SweepResults, svg: &Path, png: &Path) -> Result<()> {
    write_chart(&sweep_chart(r), svg, png)
}

/// Writes a chart as SVG and PNG, each through a temporary file.
pub fn write_chart(c: &Chart, svg: &Path, png: &Path) -> Result<()> {
    register_font();
    let mut text = String::new();
    draw(
        SVGBackend::with_string(&mut text, SIZE).into_drawing_area(),
        c,
    )
    .map_err(|e| failed(svg, e))?;
    write_atomically(svg, text.as_bytes())?;

    let mut rgb = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    draw(
        BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area(),
        c,
    )
    .map_err(|e| failed(png, e))?;
    save_rgb_png(png, SIZE.0 as usize, SIZE.1 as usize, &rgb)
}
