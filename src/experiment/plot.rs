//! `accuracy_vs_crop.svg` and `.png`: test accuracy against crop size, one line per method
//! with +-1 std error bars, and the random encoder as a dashed line (plotters).

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::data::write_atomically;
use crate::error::{Error, Result};
use crate::experiment::canvas::save_rgb_png;
use crate::experiment::report::mean_std;
use crate::experiment::results::SweepResults;

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

/// (crop size, mean accuracy, std) points of one method.
type Points = Vec<(f64, f64, f64)>;

/// The points of each crop size that has runs of `method`.
fn series(r: &SweepResults, method: &str) -> Points {
    r.sweep
        .crops
        .iter()
        .filter_map(|&c| mean_std(&r.accuracies(method, Some(c))).map(|(m, s)| (c, m, s)))
        .collect()
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    r: &SweepResults,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let lines: Vec<(String, Points)> = r
        .sweep
        .methods
        .iter()
        .map(|m| (m.name().to_uppercase(), series(r, m.name())))
        .collect();
    let random = mean_std(&r.accuracies("random", None));
    let values: Vec<f64> = lines
        .iter()
        .flat_map(|(_, s)| s.iter().flat_map(|&(_, m, d)| [m - d, m + d]))
        .chain(random.map(|(m, _)| m))
        .collect();
    let lo = values.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() {
        (lo - 1.0, hi + 1.0)
    } else {
        (0.0, 100.0)
    };
    let title = format!(
        "{} preset{}: linear-eval accuracy vs crop size",
        r.sweep.preset.name(),
        if r.sweep.smoke_scale {
            " (smoke scale)"
        } else {
            ""
        }
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(0.1f64..0.9f64, lo..hi)?;
    chart
        .configure_mesh()
        .x_desc("crop size p (fraction of the image area)")
        .y_desc("test accuracy (%)")
        .label_style((FAMILY, 14))
        .draw()?;
    for (i, (name, points)) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()].to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|&(c, m, _)| (c, m)),
                color.stroke_width(2),
            ))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(
            points
                .iter()
                .map(|&(c, m, s)| ErrorBar::new_vertical(c, m - s, m, m + s, color.filled(), 8)),
        )?;
        chart.draw_series(
            points
                .iter()
                .map(|&(c, m, _)| Circle::new((c, m), 4, color.filled())),
        )?;
    }
    if let Some((m, _)) = random {
        let grey = RGBColor(110, 110, 110);
        chart
            .draw_series(DashedLineSeries::new(
                [(0.1, m), (0.9, m)],
                6,
                4,
                grey.stroke_width(2),
            ))?
            .label("random encoder")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    }
    chart
        .configure_series_labels()
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()
}

fn failed(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.to_path_buf(),
        detail: format!("cannot draw the plot: {e}"),
    }
}

/// Writes the figure as SVG and PNG, each through a temporary file.
pub fn write_plots(r: &SweepResults, svg: &Path, png: &Path) -> Result<()> {
    register_font();
    let mut text = String::new();
    draw(
        SVGBackend::with_string(&mut text, SIZE).into_drawing_area(),
        r,
    )
    .map_err(|e| failed(svg, e))?;
    write_atomically(svg, text.as_bytes())?;

    let mut rgb = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    draw(
        BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area(),
        r,
    )
    .map_err(|e| failed(png, e))?;
    save_rgb_png(png, SIZE.0 as usize, SIZE.1 as usize, &rgb)
}
