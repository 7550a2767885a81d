//! `taming selftest`: every kernel and convolution or product algorithm against the CPU
//! references on the chosen adapter; exits non-zero if any check fails.

use clap::{Args, ValueEnum};
use taming::experiment::selftest::{selftest, SelftestShapes};
use taming::gpu::Gpu;

#[derive(Clone, Copy, ValueEnum)]
pub enum Shapes {
    /// Odd, small shapes (seconds on any adapter).
    Small,
    /// The small shapes and ResNet-18's layers at --batch images.
    Resnet18,
}

#[derive(Args)]
pub struct SelftestArgs {
    #[arg(long, value_enum, default_value = "small")]
    pub shapes: Shapes,
    /// Images per batch of the ResNet-18 shapes.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print every check, not only the failed ones.
    #[arg(long)]
    pub verbose: bool,
}

pub fn run(device: Option<&str>, args: SelftestArgs) -> taming::Result<()> {
    let gpu = Gpu::new(device)?;
    println!("adapter: {}", gpu.adapter());
    let shapes = match args.shapes {
        Shapes::Small => SelftestShapes::Small,
        Shapes::Resnet18 => SelftestShapes::ResNet18 { batch: args.batch },
    };
    let start = std::time::Instant::now();
    let report = selftest(&gpu, shapes, args.seed)?;
    for check in &report.checks {
        if args.verbose || !check.passed() {
            let verdict = if check.passed() { "ok  " } else { "FAIL" };
            let problem = check.problem.as_deref().unwrap_or("");
            println!(
                "{verdict} {:<70} rel. error {:.1e} (below {:.0e}) {problem}",
                check.name, check.rel_error, check.tolerance
            );
        }
    }
    println!(
        "{} checks, {} failed, in {:.1} s",
        report.checks.len(),
        report.failures().len(),
        start.elapsed().as_secs_f64()
    );
    report.ensure_passed()
}
